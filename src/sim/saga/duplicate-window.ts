/**
 * Measures the duplicate window of idempotency keys across regions: a keyed write commits in one
 * region, and the same request is retried in another region `t` ms later (as after a failover).
 * Below the window the retry runs again (the key had not replicated there yet); from it on, it
 * replays. Runs in the simulator's virtual time over the region table's WAN delays, so the numbers
 * are exact and repeatable.
 */
import { IdempotencyKeys, requestFingerprint, withIdempotency } from '../../core/idempotency.js';
import { loadRegionTable } from '../../core/regions.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../../core/types.js';
import { Network, NO_LINK_FAULTS } from '../network.js';
import { Prng } from '../random.js';
import { startQuietRegions } from '../region-process.js';
import { VirtualTime } from '../time.js';

export type WindowMode = 'async' | 'sync-majority' | 'sync-all';

export interface WindowRow {
  mode: WindowMode;
  from: RegionId;
  retryIn: RegionId;
  /** One-way WAN delay between the two regions. */
  oneWayMs: number;
  /** When the first request was acknowledged to its client (ms after it was sent). */
  ackMs: number;
  /** The retry runs again if sent before this (ms after the first was sent); replays from it on. */
  windowMs: number;
  /** The window measured from the acknowledgement (0: closed when the client got its answer). */
  afterAckMs: number;
}

const COLLECTIONS: CollectionSpec[] = [
  { name: 'async', policy: 'counter', replication: { mode: 'async' } },
  {
    name: 'sync-majority',
    policy: 'counter',
    replication: { mode: 'sync', acks: 'majority', timeoutMs: 5000 },
  },
  { name: 'sync-all', policy: 'counter', replication: { mode: 'sync', acks: 'all', timeoutMs: 5000 } },
];

/** One trial: whether a retry in `retryIn` sent `retryAtMs` after the first request applied the key twice. */
export async function trial(
  regions: RegionId[],
  mode: WindowMode,
  from: RegionId,
  retryIn: RegionId,
  retryAtMs: number,
): Promise<{ duplicated: boolean; ackMs: number }> {
  const table = loadRegionTable();
  const time = new VirtualTime();
  const rng = new Prng(7);
  const infos: RegionInfo[] = regions.map((id) => {
    const r = table.get(id);
    return { id: r.id, lat: r.lat, lon: r.lon };
  });
  const net = new Network(time, rng.fork('net'), (a, b) => table.oneWayMs(a, b), NO_LINK_FAULTS);
  const procs = await startQuietRegions(regions, {
    time,
    net,
    rngFor: (r) => rng.fork(r),
    regions: infos,
    collections: COLLECTIONS,
  });
  // Let the replication streams connect before measuring.
  await time.runUntil(time.nowMs + 2500);
  const fp = requestFingerprint({
    method: 'POST',
    path: `/v1/${mode}/k/increment`,
    body: '{"by":1}',
    caller: 'c',
  });
  const send = (region: RegionId) => {
    const p = procs.get(region)!;
    const keys = new IdempotencyKeys({ region, kv: p.core!, clock: time.clock(p.skew) });
    return withIdempotency(keys, 'the-key', fp, async (claim) => {
      const v = await p.core!.increment(mode, 'k', 1, { kvAfter: claim.kvAfter(200, () => null) });
      return { status: 200, body: v.value };
    });
  };
  const t0 = time.nowMs;
  let ackMs = -1;
  void send(from).then(() => {
    ackMs = time.nowMs - t0;
  });
  // Let the first request reach its commit (and schedule its fsync) before virtual time moves.
  await new Promise((r) => setImmediate(r));
  time.after(retryAtMs, () => void send(retryIn).catch(() => {}));
  await time.runUntil(t0 + Math.max(retryAtMs, 0) + 3000);
  const v = (await procs.get(from)!.core!.get(mode, 'k'))?.value;
  return { duplicated: v === 2, ackMs };
}

/**
 * For each replication mode and each other region, the smallest retry delay that replays (binary
 * search over whole milliseconds; duplication is monotonic in the delay).
 *
 * @example
 * for (const row of await measureDuplicateWindow()) console.log(row);
 */
export async function measureDuplicateWindow(
  regions: RegionId[] = ['us-east-1', 'eu-west-1', 'ap-northeast-1'],
  from: RegionId = 'us-east-1',
  onRow?: (r: WindowRow) => void,
): Promise<WindowRow[]> {
  const table = loadRegionTable();
  const rows: WindowRow[] = [];
  for (const mode of ['async', 'sync-majority', 'sync-all'] as const) {
    for (const retryIn of regions.filter((r) => r !== from)) {
      let lo = 0;
      let hi = 2000;
      let ackMs = -1;
      // Invariant: a retry at `hi` replays; find the first such ms.
      const first = await trial(regions, mode, from, retryIn, 0);
      ackMs = first.ackMs;
      if (!first.duplicated) hi = 0;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        const t = await trial(regions, mode, from, retryIn, mid);
        if (t.duplicated) lo = mid + 1;
        else hi = mid;
      }
      const row: WindowRow = {
        mode,
        from,
        retryIn,
        oneWayMs: table.oneWayMs(from, retryIn),
        ackMs,
        windowMs: hi,
        afterAckMs: Math.max(0, hi - ackMs),
      };
      rows.push(row);
      onRow?.(row);
    }
  }
  return rows;
}

export function formatWindowTable(rows: readonly WindowRow[]): string {
  const head =
    '| keys replicated | first in | retry in | one-way ms | ack at ms | duplicate if retried before ms | window after ack ms |\n| --- | --- | --- | --- | --- | --- | --- |';
  const body = rows.map(
    (r) =>
      `| ${r.mode} | ${r.from} | ${r.retryIn} | ${r.oneWayMs.toFixed(1)} | ${r.ackMs} | ${r.windowMs} | ${r.afterAckMs} |`,
  );
  return [head, ...body].join('\n');
}
