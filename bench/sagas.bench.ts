/**
 * Idempotency keys and sagas, each against its peer in the same run:
 * 1. a local write with an Idempotency-Key vs the same write without one (p99 added, target < 1 ms);
 * 2. a cross-region transfer us-east-1 -> ap-northeast-1 behind the WAN emulator vs the sum of the
 *    round trips its steps must make (target <= 1.2x);
 * 3. the duplicate window of keys across regions (simulator, virtual time).
 * Samples from MERIDIAN_BENCH_WRITES (default 2000) and MERIDIAN_BENCH_TRANSFERS (default 15).
 */
import { Pool } from 'undici';
import { loadRegionTable } from '../src/adapters/region-table.js';
import { WanEmulator } from '../src/lab/wan/index.js';
import { formatWindowTable, measureDuplicateWindow } from '../src/sim/saga/duplicate-window.js';
import { startCluster } from '../test/support/cluster.js';

const WRITES = Number(process.env.MERIDIAN_BENCH_WRITES ?? 2000);
const TRANSFERS = Number(process.env.MERIDIAN_BENCH_TRANSFERS ?? 15);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const f = (ms: number): string => ms.toFixed(2);

/** One region node (SQLite, the embedded default); writes alternate with and without a key. */
async function idempotencyOverhead(store: 'sqlite' | 'memory'): Promise<{ p99Added: number }> {
  process.stdout.write(
    `\n-- 1. Idempotency-Key on a local write: ${WRITES} PUTs each way, alternating, one region (${store})\n`,
  );
  const c = await startCluster({ regions: ['us-east-1'], store, mode: 'inprocess' });
  const pool = new Pool(c.url('us-east-1'), { connections: 1 });
  const plain: number[] = [];
  const keyed: number[] = [];
  const roundDeltas: number[] = [];
  const cpuUs = { plain: 0, keyed: 0 };
  try {
    const put = async (i: number, key: string | undefined): Promise<number> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (key) headers['idempotency-key'] = key;
      const cpu = process.cpuUsage();
      const t = performance.now();
      const res = await pool.request({
        method: 'PUT',
        path: `/v1/settings/bench-${i % 100}`,
        headers,
        body: `{"n":${i}}`,
      });
      await res.body.text();
      const ms = performance.now() - t;
      const used = process.cpuUsage(cpu);
      cpuUs[key ? 'keyed' : 'plain'] += used.user + used.system;
      if (res.statusCode !== 200) throw new Error(`PUT answered ${res.statusCode}`);
      return ms;
    };
    for (let i = 0; i < 200; i++) await put(i, i % 2 ? `warm-${i}` : undefined);
    // Rounds, so one burst of load from elsewhere on the machine spoils one round, not the verdict.
    const round = Math.min(500, WRITES);
    for (let i = 0; i < WRITES; i += round) {
      const rp: number[] = [];
      const rk: number[] = [];
      for (let j = i; j < Math.min(WRITES, i + round); j++) {
        rp.push(await put(j, undefined));
        rk.push(await put(j, `bench-${store}-${j}`));
      }
      plain.push(...rp);
      keyed.push(...rk);
      rp.sort((a, b) => a - b);
      rk.sort((a, b) => a - b);
      roundDeltas.push(pct(rk, 99) - pct(rp, 99));
      process.stdout.write(
        `   ${Math.min(WRITES, i + round)}/${WRITES}: round p99 ${f(pct(rp, 99))} vs ${f(pct(rk, 99))} ms\n`,
      );
    }
  } finally {
    await pool.close();
    await c.stop();
  }
  plain.sort((a, b) => a - b);
  keyed.sort((a, b) => a - b);
  roundDeltas.sort((a, b) => a - b);
  const rows = [
    ['write', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'CPU us/req'],
    [
      'PUT without key (peer)',
      f(pct(plain, 50)),
      f(pct(plain, 90)),
      f(pct(plain, 99)),
      f(plain.at(-1)!),
      (cpuUs.plain / plain.length).toFixed(0),
    ],
    [
      'PUT with Idempotency-Key',
      f(pct(keyed, 50)),
      f(pct(keyed, 90)),
      f(pct(keyed, 99)),
      f(keyed.at(-1)!),
      (cpuUs.keyed / keyed.length).toFixed(0),
    ],
  ];
  for (const r of rows)
    process.stdout.write(`   ${r.map((x, i) => (i === 0 ? x.padEnd(26) : x.padStart(10))).join(' ')}\n`);
  const p99Added = pct(roundDeltas, 50);
  process.stdout.write(
    `   added by the key: p50 ${f(pct(keyed, 50) - pct(plain, 50))} ms, p99 over all ${f(pct(keyed, 99) - pct(plain, 99))} ms, p99 median of ${roundDeltas.length} rounds ${f(p99Added)} ms, CPU ${((cpuUs.keyed - cpuUs.plain) / keyed.length).toFixed(0)} us/req; target p99 < 1 ms: ${p99Added < 1 ? 'met' : 'NOT met'}\n`,
  );
  return { p99Added };
}

/** Three regions behind the WAN emulator at their real RTTs; the coordinator is in us-east-1. */
async function crossRegionTransfer(): Promise<void> {
  process.stdout.write(
    `\n-- 2. transfer us-east-1 -> ap-northeast-1 behind the WAN emulator, ${TRANSFERS} sagas, one at a time\n`,
  );
  const table = loadRegionTable();
  const rtt = (a: string, b: string) => table.rttMs(a, b);
  const wan = new WanEmulator();
  const c = await startCluster({
    store: 'memory',
    mode: 'inprocess',
    configure: async (raw, { addresses }) => {
      for (const r of raw.regions) {
        r.routes = {};
        for (const [to, target] of Object.entries(addresses)) {
          if (to === r.id) continue;
          const via = await wan.addLink({ from: r.id, to, target, delayMs: table.oneWayMs(r.id, to) });
          r.routes[to] = `http://${via.host}:${via.port}`;
        }
      }
    },
  });
  const us = new Pool(c.url('us-east-1'), { connections: 2 });
  const call = async (
    pool: Pool,
    method: 'GET' | 'PUT' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await pool.request({
      method,
      path,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  };
  try {
    const ap = new Pool(c.url('ap-northeast-1'), { connections: 1 });
    await call(
      us,
      'PUT',
      '/v1/accounts/bench-from',
      { balance: 1_000_000 },
      { 'meridian-home-region': 'us-east-1' },
    );
    await call(
      ap,
      'PUT',
      '/v1/accounts/bench-to',
      { balance: 0 },
      { 'meridian-home-region': 'ap-northeast-1' },
    );
    await ap.close();
    const durations: number[] = [];
    const debits: number[] = [];
    const credits: number[] = [];
    const stepMs = (saga: Record<string, unknown>, step: string): number => {
      const h = saga.history as { atMs: number; event: string; step?: string }[];
      const start = h.find((e) => e.step === step && e.event === 'attempt')?.atMs ?? Number.NaN;
      const end = h.find((e) => e.step === step && e.event === 'done')?.atMs ?? Number.NaN;
      return end - start;
    };
    for (let i = 0; i < TRANSFERS + 2; i++) {
      const a = await call(
        us,
        'POST',
        '/v1/sagas/transfer',
        { from: 'bench-from', to: 'bench-to', amount: 1 },
        { 'idempotency-key': `bench-${Date.now()}-${i}` },
      );
      if (a.status !== 202) throw new Error(`transfer answered ${a.status}: ${JSON.stringify(a.json)}`);
      const id = String(a.json.id);
      let saga: Record<string, unknown> = {};
      for (;;) {
        saga = (await call(us, 'GET', `/v1/sagas/${id}`)).json;
        if (saga.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (saga.status !== 'completed') throw new Error(`saga ${id} ended ${String(saga.status)}`);
      // Server-side: from the saga's creation to its completion, by the coordinator's clock.
      const ms = Number(saga.updatedAtMs) - Number(saga.createdAtMs);
      if (i >= 2) {
        // The first two open the WAN connections.
        durations.push(ms);
        debits.push(stepMs(saga, 'debit'));
        credits.push(stepMs(saga, 'credit'));
      }
      process.stdout.write(`   transfer ${i + 1}/${TRANSFERS + 2}: ${ms} ms${i < 2 ? ' (warm-up)' : ''}\n`);
    }
    durations.sort((a, b) => a - b);
    // The debit commits in us-east-1 and waits for a majority: one RTT to the nearest peer. The credit
    // is one RTT to ap-northeast-1, where it waits for a majority: one RTT to ap's nearest peer.
    const debitRtt = Math.min(rtt('us-east-1', 'eu-west-1'), rtt('us-east-1', 'ap-northeast-1'));
    const callRtt = rtt('us-east-1', 'ap-northeast-1');
    const creditRtt = Math.min(rtt('ap-northeast-1', 'us-east-1'), rtt('ap-northeast-1', 'eu-west-1'));
    const floor = debitRtt + callRtt + creditRtt;
    const median = pct(durations, 50);
    debits.sort((a, b) => a - b);
    credits.sort((a, b) => a - b);
    process.stdout.write(
      `   steps: debit p50 ${pct(debits, 50)} ms (its round trips ${f(debitRtt)} ms), credit p50 ${pct(credits, 50)} ms (its round trips ${f(callRtt + creditRtt)} ms)\n`,
    );
    process.stdout.write(
      `   round trips the steps must make: debit majority ack ${f(debitRtt)} + call to ap-northeast-1 ${f(callRtt)} + credit majority ack ${f(creditRtt)} = ${f(floor)} ms\n`,
    );
    process.stdout.write(
      `   transfer: p50 ${median} ms, p90 ${pct(durations, 90)} ms, min ${durations[0]} ms; p50 / round trips = ${(median / floor).toFixed(2)}x (target <= 1.2x: ${median <= 1.2 * floor ? 'met' : 'NOT met'})\n`,
    );
  } finally {
    await us.close();
    await c.stop();
    await wan.close();
  }
}

async function duplicateWindow(): Promise<void> {
  process.stdout.write('\n-- 3. duplicate window of a key across regions (simulator, region table RTTs)\n');
  const rows = await measureDuplicateWindow();
  process.stdout.write(`${formatWindowTable(rows)}\n`);
}

/** `npm run bench sagas`; BENCH_ONLY=1,2,3 picks parts. */
export async function run(): Promise<void> {
  const only = (process.env.BENCH_ONLY ?? '1,2,3').split(',');
  if (only.includes('1')) {
    await idempotencyOverhead('sqlite');
    await idempotencyOverhead('memory');
    const load = (await import('node:os')).loadavg()[0]!;
    process.stdout.write(
      `   (1-minute load average during the run: ${load.toFixed(1)} on ${(await import('node:os')).cpus().length} cores)\n`,
    );
  }
  if (only.includes('2')) await crossRegionTransfer();
  if (only.includes('3')) await duplicateWindow();
}
