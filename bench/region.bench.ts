/**
 * Region node benchmarks, each against a peer measured in the same run:
 *  (a) local async lww writes on one node (SQLite) vs a plain better-sqlite3 insert loop;
 *  (b) replication lag across three regions behind the WAN emulator vs each link's one-way delay;
 *  (c) sync (majority) write latency vs the round-trip time to the nearest peer;
 *  (d) the replication hops inside one process, to tell the pipeline's own latency from scheduling;
 *  (e) SQLite commit latency with the background WAL checkpointer vs SQLite's automatic checkpoint.
 * Knobs: BENCH_SECONDS (default 3 for (a), 5 for (b)), BENCH_CONCURRENCY (default 64),
 * BENCH_RATE (writes/s per region, default 1000), BENCH_SYNC_WRITES (default 20),
 * BENCH_LAG_VARIANTS=0 (skip (b)'s lower-demand runs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { bucketDelta, bucketQuantile, histogramBuckets } from '../src/adapters/histogram.js';
import { loadRegionTable } from '../src/adapters/region-table.js';
import { SqliteStore } from '../src/adapters/sqlite-store.js';
import type { RegState } from '../src/core/crdt.js';
import { buildMesh, meshRoutes, WanEmulator } from '../src/lab/wan/index.js';
import { call, LAB_REGIONS, startCluster } from '../test/support/cluster.js';
import { type LoadResult, percentile, runLoad, runLoadInWorker } from './region-load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 0);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SYNC_WRITES = Number(process.env.BENCH_SYNC_WRITES ?? 20);

function table(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) => `| ${r.map((c, i) => String(c).padEnd(w[i]!)).join(' | ')} |`;
  process.stdout.write(`\n${title}\n${line(head)}\n|${w.map((x) => '-'.repeat(x + 2)).join('|')}|\n`);
  for (const r of cells.slice(1)) process.stdout.write(`${line(r)}\n`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const progress = (s: string) => process.stdout.write(`  .. ${s}\n`);

/** The peer of (a): the same writes (key, JSON value) as a plain autocommit insert loop, WAL, synchronous=NORMAL. */
/** CPU seconds the node process has used (prom-client's process metrics). */
async function nodeCpuSeconds(url: string): Promise<number> {
  const m = (await call(url, 'GET', '/metrics')).text;
  const line = m.split('\n').find((l) => l.startsWith('process_cpu_seconds_total'));
  return Number(line?.slice(line.lastIndexOf(' ') + 1) ?? Number.NaN);
}

/** Cumulative count of 200 PUT answers per histogram bound (seconds), as the node measured them. */
async function serverPutBuckets(url: string): Promise<Map<string, number>> {
  const m = (await call(url, 'GET', '/metrics')).text;
  const out = new Map<string, number>();
  for (const line of m.split('\n')) {
    if (!line.startsWith('meridian_http_request_duration_seconds_bucket{')) continue;
    if (!line.includes('method="PUT"') || !line.includes('status="200"')) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le) out.set(le, (out.get(le) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

function plainSqlite(
  writes: number,
  ratePerSec?: number,
): Promise<{ perSec: number; latenciesMs: number[]; cpuMsPerWrite: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-sqlite-'));
  const db = new Database(join(dir, 'plain.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(
    'CREATE TABLE docs (collection TEXT, key TEXT, value TEXT, PRIMARY KEY (collection, key)) WITHOUT ROWID',
  );
  const put = db.prepare('INSERT OR REPLACE INTO docs (collection, key, value) VALUES (?, ?, ?)');
  const latenciesMs: number[] = [];
  return (async () => {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    if (!ratePerSec) {
      for (let i = 0; i < writes; i++) {
        const s = performance.now();
        put.run('settings', `k${i}`, JSON.stringify({ i, v: 'x'.repeat(32) }));
        latenciesMs.push(performance.now() - s);
      }
    } else {
      const gap = 1000 / ratePerSec;
      for (let i = 0; i < writes; i++) {
        const due = t0 + i * gap;
        while (performance.now() < due) await new Promise((r) => setTimeout(r, 1));
        put.run('settings', `k${i}`, JSON.stringify({ i, v: 'x'.repeat(32) }));
        latenciesMs.push(performance.now() - due);
      }
    }
    const perSec = (writes / (performance.now() - t0)) * 1000;
    const cpu = process.cpuUsage(cpu0);
    db.close();
    rmSync(dir, { recursive: true, force: true });
    return { perSec, latenciesMs, cpuMsPerWrite: (cpu.user + cpu.system) / 1000 / writes };
  })();
}

async function localWrites(): Promise<void> {
  process.stdout.write(
    '\n(a) local async lww writes, one region node (SQLite) in its own process; open-loop client in a worker thread\n',
  );
  const seconds = SECONDS || 3;
  const c = await startCluster({ store: 'sqlite', regions: ['us-east-1'], logLevel: 'warn' });
  try {
    const spec = {
      url: c.url('us-east-1'),
      pathTemplate: '/v1/settings/k{i}',
      method: 'PUT' as const,
      bodyTemplate: `{"i":{i},"v":"${'x'.repeat(32)}"}`,
    };
    progress('warm-up 1 s');
    await runLoad({ ...spec, durationMs: 1000, concurrency: CONCURRENCY });
    progress(`closed loop, ${CONCURRENCY} in flight, ${seconds} s`);
    const cpu0 = await nodeCpuSeconds(spec.url);
    const max = await runLoad({ ...spec, durationMs: seconds * 1000, concurrency: CONCURRENCY });
    const nodeCpuMsPerWrite = (((await nodeCpuSeconds(spec.url)) - cpu0) * 1000) / Math.max(1, max.ok);
    progress(`open loop at ${RATE} writes/s, ${seconds} s`);
    // The open-loop client gets its own event loop (a real client is another process): its timer
    // lateness and response parsing must not be counted as the node's latency.
    const pid = nodePid(c.configPath, 'us-east-1');
    const sched0 = schedstat(pid);
    const pacedWall0 = performance.now();
    const buckets0 = await serverPutBuckets(spec.url);
    const paced = await runLoadInWorker({
      ...spec,
      warmupMs: 1000,
      durationMs: seconds * 1000,
      ratePerSec: RATE,
      connections: 32,
    });
    const buckets1 = await serverPutBuckets(spec.url);
    const waitShare = (schedstat(pid).waitNs - sched0.waitNs) / 1e6 / (performance.now() - pacedWall0);
    const servedWithin = (le: string) => {
      const all = (buckets1.get('+Inf') ?? 0) - (buckets0.get('+Inf') ?? 0);
      return ((buckets1.get(le) ?? 0) - (buckets0.get(le) ?? 0)) / Math.max(1, all);
    };
    progress(`harness floor: a bare node:http server, same client, ${RATE} writes/s`);
    const floor = await harnessFloor({
      ...spec,
      warmupMs: 1000,
      durationMs: seconds * 1000,
      ratePerSec: RATE,
    });
    progress('plain better-sqlite3 loop');
    const plainMax = await plainSqlite(Math.max(10_000, max.ok));
    const plainPaced = await plainSqlite(RATE * seconds, RATE);
    const maxPerSec = (max.ok / max.elapsedMs) * 1000;
    const l = sorted(max.latenciesMs);
    const p = sorted(paced.latenciesMs);
    const pp = sorted(plainPaced.latenciesMs);
    table(
      'acknowledged writes',
      ['measure', 'meridian (HTTP+validation+log)', 'plain better-sqlite3', 'ratio', 'target'],
      [
        [
          'writes/s, closed loop',
          maxPerSec,
          plainMax.perSec,
          `${fmt(maxPerSec / plainMax.perSec)}x`,
          '>= 5000',
        ],
        ['p50 ms, closed loop', percentile(l, 50), percentile(sorted(plainMax.latenciesMs), 50), '', ''],
        [`p50 ms at ${RATE}/s`, percentile(p, 50), percentile(pp, 50), '', ''],
        [
          `p99 ms at ${RATE}/s`,
          percentile(p, 99),
          percentile(pp, 99),
          `${fmt(percentile(p, 99) / percentile(pp, 99))}x`,
          '< 5',
        ],
        [
          'CPU ms per write (node process)',
          nodeCpuMsPerWrite,
          plainMax.cpuMsPerWrite,
          `${fmt(nodeCpuMsPerWrite / plainMax.cpuMsPerWrite)}x`,
          '',
        ],
        [
          'writes/s per dedicated core (1/CPU)',
          1000 / nodeCpuMsPerWrite,
          1000 / plainMax.cpuMsPerWrite,
          '',
          '>= 5000',
        ],
        ['failed', max.failed + paced.failed, 0, '', '0'],
      ],
    );
    table(
      `open loop at ${RATE}/s: share of writes the node itself answered within (fastify's elapsed time, histogram)`,
      ['1 ms', '2.5 ms', '5 ms', '10 ms', "node's event loop waiting for a CPU (run queue)"],
      [
        [
          ...['0.001', '0.0025', '0.005', '0.01'].map((le) => `${fmt(servedWithin(le) * 100)}%`),
          `${fmt(waitShare * 100)}% of the time`,
        ],
      ],
    );
    const f = sorted(floor.latenciesMs);
    table(
      `open loop at ${RATE}/s, same client: what the harness itself costs on this machine`,
      ['server', 'p50 ms', 'p99 ms', 'p99.9 ms'],
      [
        ['meridian region node', percentile(p, 50), percentile(p, 99), percentile(p, 99.9)],
        [
          'bare node:http server (parse JSON, answer 200)',
          percentile(f, 50),
          percentile(f, 99),
          percentile(f, 99.9),
        ],
      ],
    );
    const verdict = maxPerSec >= 5000 && percentile(p, 99) < 5;
    process.stdout.write(
      `  targets: ${verdict ? 'met' : 'NOT met'} (${fmt(maxPerSec)} w/s, p99 ${fmt(percentile(p, 99))} ms; ` +
        `${fmt(1000 / nodeCpuMsPerWrite)} w/s per dedicated core; load average ${fmt(loadavg()[0]!)} on ${cpus().length} cores)\n`,
    );
  } finally {
    await c.stop();
  }
}

/**
 * The client's own floor: the same open-loop worker against a bare node:http server in its own
 * process that parses the JSON body and answers 200. Whatever p99 this shows is the share of the
 * region node's p99 that timer granularity, the client and the scheduler account for here.
 */
async function harnessFloor(spec: Parameters<typeof runLoadInWorker>[0]): Promise<LoadResult> {
  const src = `const s=require('node:http').createServer((q,r)=>{let b='';q.setEncoding('utf8');q.on('data',(c)=>{b+=c});q.on('end',()=>{JSON.parse(b);r.writeHead(200,{'content-type':'application/json'});r.end('{}')})});s.listen(0,'127.0.0.1',()=>process.stdout.write(String(s.address().port)+'\\n'));`;
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('error', reject);
    });
    return await runLoadInWorker({ ...spec, url: `http://127.0.0.1:${port}` });
  } finally {
    child.kill();
  }
}

async function wanCluster(regions: string[] = LAB_REGIONS) {
  const wan = new WanEmulator();
  const c = await startCluster({
    store: 'sqlite',
    regions,
    logLevel: 'warn',
    node: { syncTimeoutMs: 5000 },
    configure: async (raw, { addresses }) => {
      if (process.env.BENCH_WAN === '0') return; // direct loopback: isolates the emulator's share
      const mesh = await buildMesh(wan, {
        regions: regions.map((id) => ({ id, target: addresses[id]! })),
      });
      const routes = meshRoutes(mesh);
      for (const r of raw.regions) r.routes = routes[r.id] ?? {};
    },
  });
  return { wan, c };
}

/** The pid of a region's `meridian region` process (found by its command line). */
function nodePid(configPath: string, region: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--region');
      if (i > 0 && argv[i + 1] === region && argv.includes(configPath)) return Number(d);
    } catch {
      // the process ended meanwhile
    }
  }
  return undefined;
}

/**
 * Linux scheduler statistics of a process's main thread (its event loop): ns on a CPU, ns waiting
 * runnable in the run queue. Waiting is the direct measure of a machine with too few cores.
 */
function schedstat(pid: number | undefined): { runNs: number; waitNs: number } {
  if (pid === undefined) return { runNs: Number.NaN, waitNs: Number.NaN };
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')
      .trim()
      .split(' ')
      .map(Number);
    return { runNs: run!, waitNs: wait! };
  } catch {
    return { runNs: Number.NaN, waitNs: Number.NaN };
  }
}

interface LagRun {
  label: string;
  /** Worst link: lag p50 and p99 minus the link's one-way delay. */
  worstP50OverMs: number;
  worstP99OverMs: number;
  met: boolean;
  cpuShare: number;
  /** Share of the wall time each node's event loop spent runnable but waiting for a CPU (mean). */
  waitShare: number;
  load1: number;
}

/** Each origin's lag histogram buckets in one node's /metrics. */
const lagBuckets = (metrics: string) =>
  histogramBuckets(metrics, 'meridian_replication_apply_lag_ms', 'origin');

/** One lag run: `regions` nodes behind the WAN emulator, `rate` writes/s to each, per-link table. */
async function lagRun(regions: string[], rate: number, seconds: number): Promise<LagRun> {
  const label = `${regions.length} regions x ${rate} writes/s`;
  const table0 = loadRegionTable();
  const { wan, c } = await wanCluster(regions);
  try {
    const load = (ms: number, template: string): Promise<LoadResult[]> =>
      Promise.all(
        regions.map((r) =>
          runLoadInWorker({
            url: c.url(r),
            pathTemplate: `/v1/settings/${r}-${template}{i}`,
            method: 'PUT',
            bodyTemplate: '{"i":{i}}',
            durationMs: ms,
            ratePerSec: rate,
            connections: 32,
          }),
        ),
      );
    // Warm-up at the same rate: the nodes compile their hot paths and open their pools in the
    // first second, which is start-up, not steady-state lag. The measured window is the
    // difference of two scrapes of each node's lag histogram.
    progress(`${label}: warm-up, 2 s`);
    await load(2000, 'w');
    const lag0 = await Promise.all(
      regions.map(async (r) => lagBuckets((await call(c.url(r), 'GET', '/metrics')).text)),
    );
    progress(`${label}: load running in worker threads (one per region), ${seconds} s`);
    const pids = regions.map((r) => nodePid(c.configPath, r));
    const sched0 = pids.map(schedstat);
    const wanSched0 = schedstat(process.pid); // this thread runs the WAN emulator
    const cpu0 = await Promise.all(regions.map((r) => nodeCpuSeconds(c.url(r))));
    const wall0 = performance.now();
    const results: LoadResult[] = await load(seconds * 1000, '');
    const cpu1 = await Promise.all(regions.map((r) => nodeCpuSeconds(c.url(r))));
    const wallS = (performance.now() - wall0) / 1000;
    const waits = pids.map((p, i) => (schedstat(p).waitNs - sched0[i]!.waitNs) / 1e9 / wallS);
    const wanSched1 = schedstat(process.pid);
    const load1 = loadavg()[0]!;
    // Let the last changes land before reading the lag histograms.
    await new Promise((r) => setTimeout(r, 1000));
    const rows: (string | number)[][] = [];
    let met = true;
    let worstP50OverMs = 0;
    let worstP99OverMs = 0;
    for (const [i, to] of regions.entries()) {
      const lag1 = lagBuckets((await call(c.url(to), 'GET', '/metrics')).text);
      for (const from of regions) {
        if (from === to) continue;
        const oneWay = table0.oneWayMs(from, to);
        const window = bucketDelta(lag1.get(from), lag0[i]!.get(from));
        const p50 = bucketQuantile(window, 0.5);
        const p99 = bucketQuantile(window, 0.99);
        const ok = p99 <= oneWay + 10;
        met &&= ok;
        worstP50OverMs = Math.max(worstP50OverMs, p50 - oneWay);
        worstP99OverMs = Math.max(worstP99OverMs, p99 - oneWay);
        rows.push([`${from} -> ${to}`, oneWay, p50, p99, p99 - oneWay, ok ? 'yes' : 'NO']);
      }
    }
    const acked = results.reduce((s, r) => s + r.ok, 0);
    const failed = results.reduce((s, r) => s + r.failed, 0);
    table(
      `${label}: lag = commit at the receiver - HLC time at the origin (ms), measured window after a 2 s warm-up; ${acked} writes acknowledged, ${failed} failed`,
      ['link', 'one-way ms', 'lag p50', 'lag p99', 'p99 - one-way', 'p99 <= one-way + 10'],
      rows,
    );
    const shares = regions.map((_, i) => (cpu1[i]! - cpu0[i]!) / wallS);
    table(
      `${label}: CPU of each region node (load average ${fmt(load1)} on ${cpus().length} cores)`,
      ['region', 'CPU s', 'share of one core', 'event loop waiting for a CPU (run queue)'],
      [
        ...regions.map((r, i) => [
          r,
          cpu1[i]! - cpu0[i]!,
          `${fmt(shares[i]! * 100)}%`,
          `${fmt(waits[i]! * 100)}%`,
        ]),
        [
          'WAN emulator (bench main thread)',
          (wanSched1.runNs - wanSched0.runNs) / 1e9,
          `${fmt(((wanSched1.runNs - wanSched0.runNs) / 1e9 / wallS) * 100)}%`,
          `${fmt(((wanSched1.waitNs - wanSched0.waitNs) / 1e9 / wallS) * 100)}%`,
        ],
      ],
    );
    const cpuShare = shares.reduce((a, b) => a + b, 0) / shares.length;
    const waitShare = waits.reduce((a, b) => a + b, 0) / waits.length;
    return { label, worstP50OverMs, worstP99OverMs, met, cpuShare, waitShare, load1 };
  } finally {
    await c.stop();
    await wan.close();
  }
}

/**
 * (b) The target run (three regions at RATE), then the same pipeline with less CPU demand: three
 * regions at 30% of the rate, and two regions at the full rate. If the tail shrinks with the
 * demand while the per-node CPU share stays well under a core, it is run-queue wait of the busy
 * processes on a small machine, not a wait inside the pipeline.
 */
async function replicationLag(): Promise<void> {
  const seconds = SECONDS || 5;
  process.stdout.write(
    `\n(b) replication lag behind the WAN emulator at table RTTs, ${RATE} writes/s per region, ${seconds} s\n`,
  );
  const runs = [await lagRun(LAB_REGIONS, RATE, seconds)];
  process.stdout.write(`  target (3 regions x ${RATE}/s): ${runs[0]!.met ? 'met' : 'NOT met'}\n`);
  if (process.env.BENCH_LAG_VARIANTS !== '0') {
    runs.push(await lagRun(LAB_REGIONS, Math.round(RATE * 0.3), seconds));
    runs.push(await lagRun(LAB_REGIONS.slice(0, 2), RATE, seconds));
  }
  table(
    'lag beyond the one-way delay vs CPU demand (worst link of each run)',
    [
      'run',
      'p50 - one-way',
      'p99 - one-way',
      'p99 <= one-way + 10',
      'CPU per node',
      'run-queue wait per node',
      'load avg',
    ],
    runs.map((r) => [
      r.label,
      r.worstP50OverMs,
      r.worstP99OverMs,
      r.met ? 'yes' : 'NO',
      `${fmt(r.cpuShare * 100)}%`,
      `${fmt(r.waitShare * 100)}%`,
      r.load1,
    ]),
  );
}

async function syncWrites(): Promise<void> {
  process.stdout.write(
    `\n(c) sync (majority) writes behind the WAN emulator, ${SYNC_WRITES} sequential writes per region\n`,
  );
  const t = loadRegionTable();
  const { wan, c } = await wanCluster();
  try {
    const rows: (string | number)[][] = [];
    let met = true;
    await Promise.all(
      LAB_REGIONS.map(async (r) => {
        const lat: number[] = [];
        for (let i = -2; i < SYNC_WRITES; i++) {
          const s = performance.now();
          const res = await call(c.url(r), 'PUT', `/v1/accounts/${r}-${i}`, { body: { balance: 100 } });
          if (res.status !== 200) throw new Error(`sync write in ${r}: ${res.status} ${res.text}`);
          if (i >= 0) lat.push(performance.now() - s); // the first two warm the connections up
        }
        const peers = LAB_REGIONS.filter((p) => p !== r);
        const nearest = peers.reduce((a, b) => (t.rttMs(r, a) <= t.rttMs(r, b) ? a : b));
        const rtt = t.rttMs(r, nearest);
        const med = percentile(sorted(lat), 50);
        const ok = med <= rtt + 10;
        met &&= ok;
        rows.push([r, nearest, rtt, med, percentile(sorted(lat), 90), med - rtt, ok ? 'yes' : 'NO']);
      }),
    );
    table(
      'sync write latency (ms), client next to the region node',
      ['region', 'nearest peer', 'RTT ms', 'median', 'p90', 'median - RTT', 'median <= RTT + 10'],
      rows,
    );
    process.stdout.write(`  target: ${met ? 'met' : 'NOT met'}\n`);
  } finally {
    await c.stop();
    await wan.close();
  }
}

/**
 * (d) Where replication time goes, with the three nodes in this process (no WAN, no process
 * scheduling): HLC stamp -> commit at the origin -> received by the peer -> committed there.
 */
async function lagBreakdown(): Promise<void> {
  const seconds = SECONDS || 3;
  process.stdout.write(
    `\n(d) replication hops, three nodes in one process, loopback, ${RATE} writes/s to us-east-1, ${seconds} s\n`,
  );
  const c = await startCluster({ store: 'sqlite', mode: 'inprocess', logLevel: 'silent' });
  try {
    const us = c.node('us-east-1')!;
    const eu = c.node('eu-west-1')!;
    const wall = (hlc: string) => Number.parseInt(hlc.slice(0, 12), 16);
    const stampUs = new Map<number, number>();
    const commitUs = new Map<number, number>();
    const recvEu = new Map<number, number>();
    const commitEu = new Map<number, number>();
    us.core.subscribe((ch) => {
      const t = Date.now();
      for (const x of ch) {
        if (x.origin !== 'us-east-1') continue;
        commitUs.set(x.seq, t);
        stampUs.set(x.seq, wall(x.hlc));
      }
    });
    eu.core.subscribe((ch) => {
      const t = Date.now();
      for (const x of ch) if (x.origin === 'us-east-1') commitEu.set(x.seq, t);
    });
    const apply = eu.core.applyRemote.bind(eu.core);
    eu.core.applyRemote = (from, ch) => {
      const t = Date.now();
      for (const x of ch) if (x.origin === 'us-east-1' && !recvEu.has(x.seq)) recvEu.set(x.seq, t);
      return apply(from, ch);
    };
    await runLoadInWorker({
      url: c.url('us-east-1'),
      pathTemplate: '/v1/settings/k{i}',
      method: 'PUT',
      bodyTemplate: '{"i":{i}}',
      durationMs: seconds * 1000,
      ratePerSec: RATE,
      connections: 32,
    });
    await new Promise((r) => setTimeout(r, 500));
    const hops: [string, number[]][] = [
      ['HLC stamp -> commit (origin)', []],
      ['commit (origin) -> received (peer)', []],
      ['received -> committed (peer)', []],
      ['total: HLC stamp -> committed (peer)', []],
    ];
    for (const [seq, t] of commitUs) {
      hops[0]![1].push(t - stampUs.get(seq)!);
      const r = recvEu.get(seq);
      const e = commitEu.get(seq);
      if (r !== undefined) hops[1]![1].push(r - t);
      if (r !== undefined && e !== undefined) hops[2]![1].push(e - r);
      if (e !== undefined) hops[3]![1].push(e - stampUs.get(seq)!);
    }
    table(
      'ms per hop (Date.now resolution)',
      ['hop', 'p50', 'p90', 'p99', 'n'],
      hops.map(([name, xs]) => {
        const s = sorted(xs);
        return [name, percentile(s, 50), percentile(s, 90), percentile(s, 99), xs.length];
      }),
    );
  } finally {
    await c.stop();
  }
}

/**
 * (e) One region's commits at RATE/s, each alone (as at low load), on the SQLite store with its
 * background checkpointer vs SQLite's automatic checkpoint inside the commit (the peer).
 */
async function checkpointStalls(): Promise<void> {
  const commits = RATE * (SECONDS || 3);
  process.stdout.write(
    `\n(e) SQLite store commits at ${RATE}/s, ${commits} each, with and without an Idempotency-Key record\n`,
  );
  const rows: (string | number)[][] = [];
  for (const withKv of [false, true]) {
    for (const background of [false, true]) {
      const dir = mkdtempSync(join(tmpdir(), 'meridian-bench-ckpt-'));
      const store = SqliteStore.open({
        path: join(dir, 'r.db'),
        checkpointAfterCommits: background ? 200 : 0,
      });
      const lat: number[] = [];
      const t0 = performance.now();
      for (let i = 1; i <= commits; i++) {
        const due = t0 + (i * 1000) / RATE;
        while (performance.now() < due) await new Promise((r) => setTimeout(r, 1));
        const value = { i, v: 'x'.repeat(32) };
        const hlc = `0000018c${String(i).padStart(16, '0')}`;
        const state: RegState = { t: 'reg', value, deleted: false, hlc, origin: 'us-east-1', prevHlc: '' };
        const s = performance.now();
        await store.commit({
          docs: [{ collection: 'settings', key: `k${i}`, state, version: { 'us-east-1': i } }],
          changes: [
            {
              origin: 'us-east-1',
              seq: i,
              hlc,
              payload: { kind: 'doc', collection: 'settings', key: `k${i}`, delta: state },
            },
          ],
          applied: { 'us-east-1': i },
          kv: withKv
            ? [
                {
                  ns: 'idempotency',
                  key: `key-${i}`,
                  value: { fp: 'f'.repeat(43), status: 200, body: { key: `k${i}`, value, version: 'v' } },
                  hlc,
                  expiresAtMs: Date.now() + 86_400_000,
                },
              ]
            : [],
        });
        lat.push(performance.now() - s);
      }
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      const l = sorted(lat);
      rows.push([
        withKv ? 'write + idempotency record' : 'write',
        background ? 'background thread' : 'inside the commit (peer)',
        percentile(l, 50),
        percentile(l, 99),
        percentile(l, 99.9),
        l.at(-1)!,
        lat.filter((x) => x > 1).length,
      ]);
    }
  }
  table(
    `commit latency (ms), load average ${fmt(loadavg()[0]!)}`,
    ['commit', 'WAL checkpoint', 'p50', 'p99', 'p99.9', 'max', '> 1 ms'],
    rows,
  );
}

/** `npm run bench region`; BENCH_ONLY=a,b,c,d,e picks parts. */
export async function run(): Promise<void> {
  const only = (process.env.BENCH_ONLY ?? 'a,b,c,d,e').split(',');
  if (only.includes('a')) await localWrites();
  if (only.includes('b')) await replicationLag();
  if (only.includes('c')) await syncWrites();
  if (only.includes('d')) await lagBreakdown();
  if (only.includes('e')) await checkpointStalls();
}
