/**
 * Differential harness for HTTP/1.1 request parsing: the same raw bytes go to the edge's server
 * (src/servers/edge/http1.ts) and to a node:http server (llhttp with node's default, strict
 * settings), each on a fresh connection that the client half-closes after writing; both answer
 * every request they read whole with a header describing it (method, target, body digest). The
 * edge must never serve a request llhttp refuses, nor read a different one from the same bytes
 * (that is request smuggling): its served requests must be a prefix of llhttp's.
 * Reused by the fuzzing suite.
 * @example
 * const diff = await startDifferential();
 * const r = await diff.compare(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
 * assert.equal(edgeAcceptsMore(r), undefined);
 * await diff.close();
 */
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect } from 'node:net';
import { createHttp1Server, type Http1Options } from '../src/servers/edge/http1.js';

/** One request a server read whole and answered. */
export interface Served {
  method: string;
  /** Origin form (absolute-form targets reduced to path and query, as the edge forwards them). */
  url: string;
  bodyBytes: number;
  /** sha256 of the body, hex (empty body: of nothing). */
  bodySha256: string;
}

export interface ParserVerdict {
  /** Requests served, in order. */
  served: Served[];
  /** The status of the first answer that was not a served request (the parser's refusal), if any. */
  refusedWith: number | undefined;
  /** The first request, in the fuzzing suite's words. */
  first: 'accept' | 'reject';
}

export interface Comparison {
  edge: ParserVerdict;
  llhttp: ParserVerdict;
}

export interface Differential {
  /** Sends `bytes` to both servers and reports what each read. */
  compare(bytes: Buffer): Promise<Comparison>;
  close(): Promise<void>;
}

function describe(method: string, url: string, body: Buffer): Served {
  return {
    method,
    url: originForm(url),
    bodyBytes: body.length,
    bodySha256: createHash('sha256').update(body).digest('hex'),
  };
}

/** Requests read whole, by client address. */
class Record {
  private readonly byAddress = new Map<string, Served[]>();

  add(address: string | undefined, s: Served): void {
    const key = (address ?? '').replace(/^::ffff:/, '');
    const list = this.byAddress.get(key);
    if (list) list.push(s);
    else this.byAddress.set(key, [s]);
  }

  take(address: string): Served[] {
    const list = this.byAddress.get(address) ?? [];
    this.byAddress.delete(address);
    return list;
  }
}

let nextClient = 0;
/** A loopback address of its own for each exchange (Linux routes all of 127.0.0.0/8 to lo). */
function clientAddress(): string {
  const n = nextClient++ % (254 * 256);
  return `127.42.${Math.floor(n / 254)}.${(n % 254) + 1}`;
}

function originForm(url: string): string {
  if (!/^https?:\/\//i.test(url)) return url;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

/** The status of the first answer that is not 200 (the servers answer 200 to every request they read). */
function refusal(raw: Buffer): number | undefined {
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) return undefined;
    const head = raw.toString('latin1', at, end);
    const status = Number(head.split(' ')[1]);
    if (status !== 200 && (status < 100 || status >= 200)) return status;
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    at = end + 4 + (m ? Number(m[1]) : 0);
  }
  return undefined;
}

function verdictOf(served: Served[], raw: Buffer): ParserVerdict {
  return { served, refusedWith: refusal(raw), first: served.length > 0 ? 'accept' : 'reject' };
}

/** Writes `bytes` on a fresh connection, half-closes, and collects everything until the server closes. */
function exchange(port: number, from: string, bytes: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: from });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(finish, timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', finish);
    s.on('error', finish);
    s.end(bytes);
  });
}

/**
 * Starts both servers on loopback ports. `edgeOptions` are the edge server's limits (its
 * defaults otherwise); node's server keeps its own defaults.
 */
export async function startDifferential(
  edgeOptions: Partial<Http1Options> = {},
  timeoutMs = 2000,
): Promise<Differential> {
  const edgeRead = new Record();
  const nodeRead = new Record();
  const edge = createHttp1Server(edgeOptions, (req, res) => {
    edgeRead.add(req.remoteAddress, describe(req.method, req.url, req.body ?? Buffer.alloc(0)));
    res.send(200, {}, 'ok');
  });
  const node: HttpServer = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    // Read now: a destroyed socket no longer knows its peer.
    const from = req.socket.remoteAddress;
    let recorded = false;
    const record = (): void => {
      if (recorded || !req.complete) return;
      recorded = true;
      nodeRead.add(from, describe(req.method ?? '', req.url ?? '', Buffer.concat(chunks)));
    };
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      record();
      res.end('ok');
    });
    // Read whole, then the connection failed on bytes after it: still read.
    req.on('close', record);
  });
  // A parsed CONNECT or upgrade is not a request node's server hands to its handler: not served.
  node.on('connect', (_req, socket) => socket.destroy());
  node.on('upgrade', (_req, socket) => socket.destroy());
  const listen = (s: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }) =>
    new Promise<number>((resolve) =>
      s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)),
    );
  const [edgePort, nodePort] = await Promise.all([listen(edge), listen(node)]);
  return {
    async compare(bytes) {
      const from = clientAddress();
      const [e, n] = await Promise.all([
        exchange(edgePort, from, bytes, timeoutMs),
        exchange(nodePort, from, bytes, timeoutMs),
      ]);
      // Close events of the servers' side come a turn after the client saw the connection end.
      await new Promise((r) => setTimeout(r, 5));
      return { edge: verdictOf(edgeRead.take(from), e), llhttp: verdictOf(nodeRead.take(from), n) };
    },
    async close() {
      edge.closeAllConnections();
      node.closeAllConnections();
      await Promise.all([new Promise((r) => edge.close(r)), new Promise((r) => node.close(r))]);
    },
  };
}

/**
 * What the edge read that llhttp did not, or undefined when the edge's served requests are a
 * prefix of llhttp's (it refused earlier, or read the same).
 */
export function edgeAcceptsMore(c: Comparison): string | undefined {
  const { edge, llhttp } = c;
  for (let i = 0; i < edge.served.length; i++) {
    const e = edge.served[i]!;
    const n = llhttp.served[i];
    if (n === undefined) {
      return `the edge served request ${i + 1} (${e.method} ${e.url}, ${e.bodyBytes} body bytes); llhttp refused it (${llhttp.refusedWith ?? 'closed'})`;
    }
    if (n.method !== e.method || n.url !== e.url || n.bodySha256 !== e.bodySha256) {
      return `request ${i + 1} was read differently: edge ${e.method} ${e.url} (${e.bodyBytes} body bytes), llhttp ${n.method} ${n.url} (${n.bodyBytes} body bytes)`;
    }
  }
  return undefined;
}
