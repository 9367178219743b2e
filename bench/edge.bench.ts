/**
 * Edge benchmarks, each against a peer in the same run:
 *  1. proxy: throughput through the edge vs nginx `proxy_pass` to the same upstream (one worker
 *     each, keep-alive, the same load generator), and the p99 added over going direct at half of
 *     nginx's peak rate;
 *  2. failover: a region node dies under steady load; time until the last request routed to it, and
 *     failed idempotent requests, with the lab's 200 ms probe interval.
 * `npm run bench edge`; EDGE_BENCH_SECONDS (default 3) sets the length of each run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI } from '../test/support/services.js';
import { closedLoop, fixedRate, hasWrk, type LoadResult, runWrk } from './edge-load.js';
import {
  freePort,
  hasNginx,
  type Proc,
  startEdgeProcess,
  startNodeUpstream,
  startProxyNginx,
  startStaticNginx,
} from './edge-peers.js';

const SECONDS = Number(process.env.EDGE_BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.EDGE_BENCH_CONNECTIONS ?? 32);
const PATH = '/v1/settings/bench';

const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

/** Writes a one-region config whose node is `upstream` and whose edge listens on `edgePort`. */
function benchConfig(upstream: string, edgePort: number, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-edge-bench-'));
  const path = join(dir, 'config.json');
  writeFileSync(
    path,
    JSON.stringify({
      secrets: { clusterSecret: 'bench-cluster-secret', adminToken: 'bench-admin-token-0' },
      regions: [
        {
          id: 'bench',
          lat: 0,
          lon: 0,
          node: { listen: { port: Number(new URL(upstream).port) }, url: upstream },
          edge: { listen: { host: '127.0.0.1', port: edgePort }, url: `http://127.0.0.1:${edgePort}` },
        },
      ],
      ...extra,
    }),
  );
  return path;
}

async function peak(url: string): Promise<LoadResult> {
  // A short warm-up first: JIT for the edge, connection pools for both.
  if (hasWrk()) {
    await runWrk(url, CONNECTIONS, 1000);
    return runWrk(url, CONNECTIONS, SECONDS * 1000);
  }
  await closedLoop(url, CONNECTIONS, 1000);
  return closedLoop(url, CONNECTIONS, SECONDS * 1000);
}

export async function proxyBench(): Promise<void> {
  const nginx = hasNginx();
  if (!nginx) {
    const msg = 'nginx is not installed (apt-get install -y nginx): the peer is skipped';
    if (inCI) throw new Error(`${msg} — required in CI`);
    process.stdout.write(`${msg}\n`);
  }
  process.stdout.write(
    `load generator: ${hasWrk() ? 'wrk -t1' : 'undici closed loop (wrk not installed)'}, ${CONNECTIONS} connections, ${SECONDS} s per run\n`,
  );
  const procs: Proc[] = [];
  try {
    const upPort = await freePort();
    const upstream = nginx ? await startStaticNginx(upPort) : await startNodeUpstream(upPort);
    procs.push(upstream);
    const edgePort = await freePort();
    const edge = await startEdgeProcess(
      benchConfig(upstream.url, edgePort),
      'bench',
      `http://127.0.0.1:${edgePort}`,
    );
    procs.push(edge);
    let proxy: Proc | undefined;
    if (nginx) {
      proxy = await startProxyNginx(await freePort(), upstream.url);
      procs.push(proxy);
    }

    const targets: [string, string][] = [
      ['direct (no proxy)', upstream.url],
      ...(proxy ? [['nginx proxy_pass', proxy.url] as [string, string]] : []),
      ['meridian edge', edge.url],
    ];
    const peaks = new Map<string, LoadResult>();
    for (const [name, url] of targets) {
      process.stdout.write(`  peak: ${name} ...\n`);
      peaks.set(name, await peak(url + PATH));
    }
    const edgePeak = peaks.get('meridian edge')!;
    const nginxPeak = peaks.get('nginx proxy_pass');
    process.stdout.write(
      `\n${table([
        ['peak throughput', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'vs nginx'],
        ...[...peaks].map(([name, r]) => [
          name,
          fmt(r.rps),
          fmt(r.p50Ms, 2),
          fmt(r.p99Ms, 2),
          String(r.errors),
          nginxPeak ? fmt(r.rps / nginxPeak.rps, 2) : '-',
        ]),
      ])}\n`,
    );
    if (nginxPeak) {
      const ratio = edgePeak.rps / nginxPeak.rps;
      process.stdout.write(
        `edge/nginx throughput ratio: ${fmt(ratio, 2)} (target >= 0.50: ${ratio >= 0.5 ? 'met' : 'NOT met'})\n`,
      );
    }

    // Latency at a fixed rate: half of nginx's peak (half of the edge's own without nginx).
    const rate = Math.round((nginxPeak ?? edgePeak).rps / 2);
    process.stdout.write(
      `\nfixed rate ${rate} req/s (half of ${nginxPeak ? "nginx's" : "the edge's"} peak), undici open loop\n`,
    );
    const atRate = new Map<string, LoadResult>();
    for (const [name, url] of targets) {
      process.stdout.write(`  rate: ${name} ...\n`);
      await fixedRate(url + PATH, rate, 500);
      atRate.set(name, await fixedRate(url + PATH, rate, SECONDS * 1000));
    }
    const direct = atRate.get('direct (no proxy)')!;
    process.stdout.write(
      `\n${table([
        [`at ${rate} req/s`, 'achieved req/s', 'p50 ms', 'p99 ms', 'added p99 ms', 'errors'],
        ...[...atRate].map(([name, r]) => [
          name,
          fmt(r.rps),
          fmt(r.p50Ms, 3),
          fmt(r.p99Ms, 3),
          name.startsWith('direct') ? '-' : fmt(r.p99Ms - direct.p99Ms, 3),
          String(r.errors),
        ]),
      ])}\n`,
    );
    const added = atRate.get('meridian edge')!.p99Ms - direct.p99Ms;
    process.stdout.write(
      `edge added p99 over direct: ${fmt(added, 3)} ms (target < 1 ms: ${added < 1 ? 'met' : 'NOT met'})\n`,
    );
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

export async function run(): Promise<void> {
  process.stdout.write('-- proxy: meridian edge vs nginx proxy_pass --\n');
  await proxyBench();
}
