/**
 * The fuzzing suite's runner: how long and how many (MERIDIAN_FUZZ_MS, MERIDIAN_FUZZ_COUNT), which
 * seed (MERIDIAN_FUZZ_SEED replays a run; the seed is always printed), sending one request's bytes
 * over a fresh connection, and the oracle every answer is held to:
 * - the server answers or closes, never a 5xx except 503/504 with a reason in the contract's shape;
 * - no internal route answers 2xx without the cluster secret, however its path is spelled;
 * - raw bytes that Node's own parser (llhttp) rejects are not accepted (the differential oracle);
 * - the process stays alive and another client's /healthz keeps answering 200.
 * scripts/fuzz.mjs runs the same targets for longer (MERIDIAN_FUZZ_PROGRESS, MERIDIAN_FUZZ_REPORT).
 */
import { appendFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { request } from 'undici';
import { type FuzzRequest, fuzzRequest } from './fuzz-http-gen.js';

export const FUZZ_MS = Number(process.env.MERIDIAN_FUZZ_MS ?? 20_000);
export const FUZZ_COUNT = Number(process.env.MERIDIAN_FUZZ_COUNT ?? 1_000_000);
/**
 * `npm test` (and so CI) runs a fixed seed: a gate that passes or fails on the code alone, never on
 * the draw. New seeds are `npm run fuzz`'s job (a fresh one each run), and what it finds is added here
 * as a regression test.
 */
export const DEFAULT_FUZZ_SEED = 20261205;
export const FUZZ_SEED = Number(process.env.MERIDIAN_FUZZ_SEED ?? DEFAULT_FUZZ_SEED);
const PROGRESS = process.env.MERIDIAN_FUZZ_PROGRESS === '1';
const REPORT = process.env.MERIDIAN_FUZZ_REPORT;
/** How long one exchange may take before the connection is dropped (a hang is not a finding). */
const EXCHANGE_MS = 3_000;

export interface Answer {
  /** Status of the first response; undefined when the server closed without one. */
  status: number | undefined;
  /** The first response's head and (a prefix of) everything after it, latin1. */
  text: string;
  timedOut: boolean;
  /** The client's port, by which a server can tell this connection apart. */
  localPort: number | undefined;
}

/** Sends the bytes on a new connection, half-closes, and reads until the server closes. */
export function exchange(host: string, port: number, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const s = connect({ host, port });
    let localPort: number | undefined;
    s.on('connect', () => {
      localPort = s.localPort;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      s.destroy();
    }, EXCHANGE_MS);
    s.on('data', (d: Buffer) => {
      if (size < 64 * 1024) chunks.push(d);
      size += d.length;
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      // Interim 1xx answers (100 Continue) come before the final one.
      const m = /^(?:HTTP\/1\.[01] 1\d\d[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n)*HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, text, timedOut, localPort });
    });
    s.write(bytes, () => s.end());
  });
}

/**
 * What a parser did with a connection's first request: read it whole, refused its head, or
 * accepted its head and then refused its body (a bad chunk, a short body).
 */
export type Verdict = 'accept' | 'reject-head' | 'reject-body';

/**
 * The differential reference for a whole server process: given raw bytes, did llhttp read the
 * first request? (The edge's parser itself is also compared request by request through
 * test/http-differential.ts, in test/fuzz-http.test.ts.)
 */
export interface ParserReference {
  verdict(bytes: Buffer): Promise<Verdict>;
  close(): Promise<void>;
}

/**
 * Node's own HTTP server with default (strict) parser settings. It accepts a request when it has
 * read the connection's first request to its end (judged on the server side, so a broken second
 * request pipelined behind a good first one does not count against the first).
 */
export async function llhttpReference(): Promise<ParserReference> {
  /** Client ports whose first request's head was parsed, and whose first request was read whole. */
  const heads = new Set<number>();
  const accepted = new Set<number>();
  const seen = new Set<number>();
  const first = (port: number | undefined): boolean => {
    if (port === undefined || seen.has(port)) return false;
    seen.add(port);
    return true;
  };
  const server: Server = createServer((req, res) => {
    const port = req.socket.remotePort;
    const isFirst = first(port);
    if (isFirst && port !== undefined) heads.add(port);
    req.resume();
    req.on('end', () => {
      if (isFirst && port !== undefined) accepted.add(port);
      res.end('ok');
    });
  });
  // A parsed upgrade or CONNECT request is accepted by the parser; only the protocol switch is not served.
  const parsed = (req: { socket: { remotePort?: number } }, socket: { destroy(): void }) => {
    const port = req.socket.remotePort;
    if (first(port) && port !== undefined) {
      heads.add(port);
      accepted.add(port);
    }
    socket.destroy();
  };
  server.on('upgrade', parsed);
  server.on('connect', parsed);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return {
    verdict: async (bytes) => {
      const ans = await exchange('127.0.0.1', addr.port, bytes);
      await new Promise((r) => setImmediate(r));
      const port = ans.localPort;
      if (port === undefined) return 'reject-head';
      const v: Verdict = accepted.has(port) ? 'accept' : heads.has(port) ? 'reject-body' : 'reject-head';
      accepted.delete(port);
      heads.delete(port);
      seen.delete(port);
      return v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Statuses that mean "the parser refused this request" rather than "the application handled it". */
const PARSER_REFUSALS = new Set([400, 408, 411, 413, 414, 417, 431, 501, 505]);
const PROTOCOL_5XX = new Set([501, 503, 504, 505]);

export interface Finding {
  target: string;
  seed: number;
  caseIndex: number;
  kind: 'server-error' | 'internal-exposed' | 'accepts-invalid' | 'died' | 'unhealthy';
  detail: string;
  /** The request, base64 (latin1 text is printed too, truncated). */
  bytes: string;
}

/** Judges one answer; undefined when it is fine. */
export function judge(
  req: FuzzRequest,
  ans: Answer,
  ref: Verdict | undefined,
): Omit<Finding, 'target' | 'seed' | 'caseIndex' | 'bytes'> | undefined {
  const s = ans.status;
  if (s !== undefined && s >= 500) {
    const reasoned = /"code"\s*:\s*"[^"]+"/.test(ans.text) && /"message"\s*:/.test(ans.text);
    // 503/504 say "not now"; 501 (an unknown method or transfer coding, RFC 9110 §9.1, RFC 9112
    // §6.1) and 505 (HTTP version) are the protocol's own refusals of the request, not failures.
    if (!(PROTOCOL_5XX.has(s) && reasoned)) {
      return { kind: 'server-error', detail: `answered ${s}: ${ans.text.slice(0, 300)}` };
    }
  }
  if (s !== undefined && s < 300) {
    const line = req.bytes.subarray(0, 2048).toString('latin1').split(/\r?\n/)[0] ?? '';
    let target = line.split(' ')[1] ?? '';
    try {
      target = decodeURIComponent(target);
    } catch {
      // undecodable: judged as spelled
    }
    if (/(^|[/\\])internal([/\\]|$)/i.test(target)) {
      return { kind: 'internal-exposed', detail: `internal route answered ${s} without the cluster secret` };
    }
  }
  const method = req.bytes.subarray(0, 8).toString('latin1').split(' ')[0] ?? '';
  // A server may answer a GET before reading a body it ignores; a write must not act on a bad body.
  const bodyMatters = method === 'PUT' || method === 'POST' || method === 'PATCH';
  const accepts =
    s !== undefined &&
    ((ref === 'reject-head' && !PARSER_REFUSALS.has(s)) || (ref === 'reject-body' && bodyMatters && s < 300));
  if (accepts) {
    return {
      kind: 'accepts-invalid',
      detail: `llhttp rejects it, the server answered ${s}: ${ans.text.slice(0, 200)}`,
    };
  }
  return undefined;
}

export interface HttpTarget {
  name: string;
  host: string;
  port: number;
  /** False once the process has exited. */
  alive(): boolean;
  /** The process's last output, for a finding's report. */
  output(): string;
  /** A normal client's request during the run (a write, say); a string says what went wrong. */
  canary?: () => Promise<string | undefined>;
  /** After the run: what the canaries did reached where it should (replication kept going). */
  settle?: () => Promise<string | undefined>;
}

export interface RunSummary {
  target: string;
  seed: number;
  cases: number;
  ms: number;
  statuses: Record<string, number>;
  findings: Finding[];
}

async function healthy(t: HttpTarget): Promise<string | undefined> {
  try {
    const res = await request(`http://${t.host}:${t.port}/healthz`, {
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    await res.body.text();
    return res.statusCode === 200 ? undefined : `another client's /healthz answered ${res.statusCode}`;
  } catch (e) {
    return `another client's /healthz failed: ${(e as Error).message}`;
  }
}

export function printable(bytes: Buffer): string {
  const s = bytes.subarray(0, 400).toString('latin1');
  return JSON.stringify(s) + (bytes.length > 400 ? ` … (${bytes.length} bytes)` : '');
}

/**
 * Runs random requests against the target until the time or count budget is spent, or the target
 * dies. Each case is `fuzzRequest(seed, i)`, so the printed seed replays the run.
 * @example const summary = await fuzzHttp(target, ref, { seed: FUZZ_SEED, ms: FUZZ_MS, count: FUZZ_COUNT });
 */
export async function fuzzHttp(
  t: HttpTarget,
  ref: ParserReference,
  budget: { seed: number; ms: number; count: number; known?: (f: Finding) => string | undefined },
): Promise<RunSummary> {
  const start = Date.now();
  const summary: RunSummary = {
    target: t.name,
    seed: budget.seed,
    cases: 0,
    ms: 0,
    statuses: {},
    findings: [],
  };
  const knownHits = new Map<string, number>();
  let lastProgress = start;
  let lastHealth = start;
  const record = (f: Finding) => {
    const known = budget.known?.(f);
    if (known !== undefined) {
      knownHits.set(known, (knownHits.get(known) ?? 0) + 1);
      return;
    }
    // One of each kind and status is enough to report; the rest are the same bug again.
    const dup = summary.findings.filter(
      (x) => x.kind === f.kind && x.detail.slice(0, 14) === f.detail.slice(0, 14),
    );
    if (dup.length < 3) summary.findings.push(f);
  };
  for (let i = 0; i < budget.count && Date.now() - start < budget.ms; i++) {
    const req = fuzzRequest(budget.seed, i);
    const [ans, verdict] = await Promise.all([
      exchange(t.host, t.port, req.bytes),
      req.kind === 'raw' ? ref.verdict(req.bytes) : Promise.resolve(undefined),
    ]);
    summary.cases++;
    const key = ans.status === undefined ? (ans.timedOut ? 'hang' : 'closed') : String(ans.status);
    summary.statuses[key] = (summary.statuses[key] ?? 0) + 1;
    const bad = judge(req, ans, verdict);
    const base = { target: t.name, seed: budget.seed, caseIndex: i, bytes: req.bytes.toString('base64') };
    if (bad) record({ ...base, ...bad });
    if (!t.alive()) {
      record({
        ...base,
        kind: 'died',
        detail: `the process exited after this case:\n${t.output().slice(-2000)}`,
      });
      break;
    }
    const now = Date.now();
    if (now - lastHealth > 1000 || i % 100 === 99) {
      lastHealth = now;
      const why = (await healthy(t)) ?? (await t.canary?.());
      if (why) record({ ...base, kind: 'unhealthy', detail: `${why} (after this case)` });
    }
    if (PROGRESS && now - lastProgress > 10_000) {
      lastProgress = now;
      process.stderr.write(
        `fuzz ${t.name}: ${summary.cases} cases in ${((now - start) / 1000).toFixed(0)} s, ${summary.findings.length} findings, seed ${budget.seed}\n`,
      );
    }
  }
  const why = t.alive() ? ((await healthy(t)) ?? (await t.settle?.())) : 'the process exited';
  if (why)
    record({
      target: t.name,
      seed: budget.seed,
      caseIndex: summary.cases,
      kind: 'unhealthy',
      detail: `${why} (at the end)`,
      bytes: '',
    });
  summary.ms = Date.now() - start;
  for (const [k, n] of knownHits)
    process.stderr.write(`fuzz ${t.name}: known finding hit ${n} times: ${k}\n`);
  if (REPORT)
    appendFileSync(REPORT, `${JSON.stringify({ ...summary, known: Object.fromEntries(knownHits) })}\n`);
  return summary;
}

/** A failure message that replays: the seed, the case, the bytes. */
export function describeFindings(s: RunSummary): string {
  return s.findings
    .map(
      (f) =>
        `${f.kind} on ${f.target}, seed ${f.seed} case ${f.caseIndex} (replay: MERIDIAN_FUZZ_SEED=${f.seed} MERIDIAN_FUZZ_COUNT=${f.caseIndex + 1}):\n  ${f.detail}\n  request: ${f.bytes ? printable(Buffer.from(f.bytes, 'base64')) : '-'}`,
    )
    .join('\n');
}
