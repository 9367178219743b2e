/**
 * Replication lag per directed link against its floor, the emulated one-way delay (RTT/2): a probe
 * write at each origin node, then a read at every peer node that waits for that version
 * (Meridian-Min-Version); the lag is when the peer could answer minus when the origin acknowledged.
 */
import { probeLag } from '../lag-probe.js';
import type { LabRegion } from '../plan.js';
import { quantile } from '../stats.js';
import { barsSvg, table } from '../svg.js';
import { progress, sleep } from './http.js';
import type { LabTarget } from './target.js';

export interface ReplicationResult {
  links: {
    from: string;
    to: string;
    floorMs: number;
    samples: number;
    p50: number;
    p90: number;
    p99: number;
    max: number;
    lost: number;
  }[];
  table: string;
  svg: string;
}

/** @example await replication(target, { seconds: 20, log: console.log }) */
export async function replication(
  t: LabTarget,
  opts: { seconds: number; intervalMs?: number; log: (s: string) => void },
): Promise<ReplicationResult> {
  const regions = t.plan.regions;
  const samples = new Map<string, number[]>();
  const lost = new Map<string, number>();
  const endMs = Date.now() + opts.seconds * 1000;
  const startMs = Date.now();
  let round = 0;
  let lastShown = 0;
  const inflight: Promise<void>[] = [];
  opts.log(`replication: probing ${t.plan.links.length} links for ${opts.seconds} s`);
  while (Date.now() < endMs) {
    const origin = regions[round++ % regions.length] as LabRegion;
    const peers = regions.filter((r) => r.id !== origin.id);
    inflight.push(
      probeLag(origin, peers).then((res) => {
        for (const r of res) {
          const k = `${r.from}>${r.to}`;
          if (r.lagMs === undefined) lost.set(k, (lost.get(k) ?? 0) + 1);
          else {
            if (!samples.has(k)) samples.set(k, []);
            samples.get(k)?.push(r.lagMs);
          }
        }
      }),
    );
    await sleep(opts.intervalMs ?? 150);
    if (Date.now() - lastShown > 1000) {
      lastShown = Date.now();
      const n = [...samples.values()].reduce((s, l) => s + l.length, 0);
      progress('probing', (Date.now() - startMs) / (opts.seconds * 1000), `${n} samples`);
    }
  }
  await Promise.all(inflight);
  progress('probing', 1);
  opts.log('');
  const links = t.plan.links.map((l) => {
    const s = [...(samples.get(`${l.from}>${l.to}`) ?? [])].sort((a, b) => a - b);
    return {
      from: l.from,
      to: l.to,
      floorMs: l.oneWayMs,
      samples: s.length,
      p50: quantile(s, 0.5),
      p90: quantile(s, 0.9),
      p99: quantile(s, 0.99),
      max: s[s.length - 1] ?? Number.NaN,
      lost: lost.get(`${l.from}>${l.to}`) ?? 0,
    };
  });
  const tbl = table(
    [
      'link',
      'floor (RTT/2) ms',
      'samples',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
      'p50 - floor',
      'not caught up in 5 s',
    ],
    links.map((l) => [
      `${l.from} -> ${l.to}`,
      l.floorMs,
      l.samples,
      l.p50,
      l.p90,
      l.p99,
      l.max,
      l.p50 - l.floorMs,
      l.lost,
    ]),
  );
  const svg = barsSvg(
    'Replication lag per link (write acknowledged at origin -> readable at peer)',
    links.map((l) => ({
      label: `${l.from}→${l.to}`,
      floor: l.floorMs,
      bars: [
        { name: 'p50', value: l.p50 },
        { name: 'p90', value: l.p90 },
        { name: 'p99', value: l.p99 },
      ],
    })),
    { yLabel: 'lag (ms)', floorLabel: 'floor: one-way delay' },
  );
  return { links, table: tbl, svg };
}
