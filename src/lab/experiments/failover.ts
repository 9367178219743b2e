/**
 * Failover: lose a region under load and measure what clients and data see.
 * - RTO: time from the loss until every request of the victim's nearby clients succeeds in another region.
 * - client errors: their failed requests after the loss.
 * - RPO: writes the victim acknowledged that no surviving region has once it is declared lost,
 *   for an async collection (profiles) and a sync one (accounts, acks: majority).
 * Afterwards the victim is restarted and the missing writes are checked again (they were on its disk).
 */
import { randomBytes } from 'node:crypto';
import { greatCircleKm } from '../../core/geo.js';
import type { LabRegion } from '../plan.js';
import { scatterSvg, table } from '../svg.js';
import { call, progress, sleep } from './http.js';
import type { LabTarget } from './target.js';

export interface FailoverOptions {
  victim?: string;
  /**
   * 'outage' (default): the site is lost: its WAN links go dark and its node and edge die at the
   * same moment; what was still in flight never arrives, and its clients move to the next edge.
   * 'crash': only the node process dies; its edge routes around it, and bytes already on the wire
   * still reach the peers.
   */
  how?: 'outage' | 'crash';
  warmupS: number;
  afterS: number;
  log: (s: string) => void;
}

interface ClientReq {
  tMs: number;
  endMs: number;
  status: number;
  served: string | undefined;
  latencyMs: number;
}

interface AckedWrite {
  collection: 'profiles' | 'accounts';
  key: string;
  ackMs: number;
}

export interface FailoverResult {
  victim: string;
  how: 'outage' | 'crash';
  errorsByStatus: Record<string, number>;
  rtoMs: number;
  clientRequestsAfterKill: number;
  clientErrors: number;
  rpo: {
    collection: string;
    mode: string;
    acked: number;
    missing: number;
    windowMs: number;
    recoveredAfterRestart: number;
  }[];
  table: string;
  svg: string;
}

async function waitUp(r: LabRegion, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await call(`${r.nodeUrl}/healthz`, { timeoutMs: 800 })).status === 200) return true;
    await sleep(200);
  }
  return false;
}

/** @example await failover(target, { warmupS: 3, afterS: 10, log: console.log }) */
export async function failover(t: LabTarget, opts: FailoverOptions): Promise<FailoverResult> {
  const regions = t.plan.regions;
  const victim = regions.find((r) => r.id === (opts.victim ?? regions[1]?.id));
  if (!victim) throw new Error(`--victim must be one of ${regions.map((r) => r.id).join(', ')}`);
  const survivors = regions.filter((r) => r.id !== victim.id);
  const run = randomBytes(3).toString('hex');
  const log = opts.log;
  log(`failover: victim ${victim.id}, survivors ${survivors.map((r) => r.id).join(', ')}, run ${run}`);

  let killAtMs = Number.POSITIVE_INFINITY;
  /** When the chaos calls had returned: the region was gone by then, whatever it acked is counted. */
  let goneAtMs = Number.POSITIVE_INFINITY;
  let stop = false;
  const clientReqs: ClientReq[] = [];
  const acked: AckedWrite[] = [];

  // Clients near the victim use its edge; like a browser with several DNS answers, a client whose
  // edge does not answer moves to the next nearest one (GeoDNS hands out the same order).
  const edgeOrder = [
    victim,
    ...[...survivors].sort((x, y) => greatCircleKm(victim, x) - greatCircleKm(victim, y)),
  ];
  const client = async (n: number) => {
    let i = 0;
    let at = 0;
    while (!stop) {
      i++;
      const edge = edgeOrder[at] as LabRegion;
      const url = `${edge.edgeUrl}/v1/settings/fo-${run}-c${n}`;
      const r =
        i % 2 === 0
          ? await call(url, { method: 'PUT', body: { i }, timeoutMs: 2000 })
          : await call(url, { timeoutMs: 2000 });
      const ok = r.status === 200 || r.status === 404;
      clientReqs.push({
        tMs: r.startMs,
        endMs: r.endMs,
        status: r.status,
        served: r.served,
        latencyMs: r.endMs - r.startMs,
      });
      if (r.status === 0) at = Math.min(at + 1, edgeOrder.length - 1);
      if (!ok) await sleep(50);
      await sleep(20);
    }
  };
  // Writers straight at the victim's node: what it acknowledged is what RPO is about.
  const writer = async (collection: 'profiles' | 'accounts') => {
    let i = 0;
    while (!stop && Date.now() < killAtMs + 2000) {
      i++;
      const key = `fo-${run}-${collection}-${i}`;
      // accounts is read-only to clients: opening an account is its client write (sync, majority).
      const r =
        collection === 'accounts'
          ? await call(`${victim.nodeUrl}/v1/accounts/${key}/open`, { method: 'POST', timeoutMs: 3000 })
          : await call(`${victim.nodeUrl}/v1/${collection}/${key}`, {
              method: 'PUT',
              body: { name: key },
              timeoutMs: 3000,
            });
      if (r.status === 200) acked.push({ collection, key, ackMs: r.endMs });
      if (r.status === 0) await sleep(50);
    }
  };

  await t.traffic(false);
  const tasks = [client(1), client(2), client(3), writer('profiles'), writer('profiles'), writer('accounts')];
  for (let s = 0; s < opts.warmupS; s++) {
    progress('warm-up', (s + 1) / opts.warmupS, `${clientReqs.length} requests`);
    await sleep(1000);
  }
  log('');
  const how = opts.how ?? 'outage';
  log(
    how === 'outage'
      ? `losing ${victim.id}: WAN links cut, node and edge killed (SIGKILL)...`
      : `killing ${victim.id}'s node (SIGKILL)...`,
  );
  killAtMs = Date.now();
  if (how === 'outage') await t.chaos({ action: 'partition', a: victim.id });
  await t.chaos({ action: 'kill', region: victim.id, withEdge: how === 'outage' });
  goneAtMs = Date.now();
  for (let s = 0; s < opts.afterS; s++) {
    await sleep(1000);
    const errs = clientReqs.filter((r) => r.endMs > killAtMs && r.status !== 200 && r.status !== 404).length;
    progress('after kill', (s + 1) / opts.afterS, `${errs} client errors so far`);
  }
  log('');
  stop = true;
  await Promise.all(tasks);
  const declaredLostMs = Date.now();

  const after = clientReqs.filter((r) => r.endMs > killAtMs).sort((a, b) => a.endMs - b.endMs);
  const bad = (r: ClientReq) => !(r.status === 200 || r.status === 404) || r.served === victim.id;
  const lastBad = [...after].reverse().find(bad);
  const firstGood = after.find((r) => !bad(r));
  const rtoMs = lastBad ? lastBad.endMs - killAtMs : firstGood ? firstGood.endMs - killAtMs : Number.NaN;
  const clientErrors = after.filter((r) => !(r.status === 200 || r.status === 404)).length;
  const errorsByStatus: Record<string, number> = {};
  for (const r of after)
    if (!(r.status === 200 || r.status === 404))
      errorsByStatus[r.status === 0 ? 'no answer' : String(r.status)] =
        (errorsByStatus[r.status === 0 ? 'no answer' : String(r.status)] ?? 0) + 1;

  log(`checking ${acked.length} acknowledged writes in ${survivors.map((r) => r.id).join(', ')}...`);
  const present = async (w: AckedWrite): Promise<boolean> => {
    for (const s of survivors) {
      const r = await call(`${s.nodeUrl}/v1/${w.collection}/${w.key}`, { timeoutMs: 3000 });
      if (r.status === 200) return true;
    }
    return false;
  };
  const missing: AckedWrite[] = [];
  for (const [i, w] of acked.entries()) {
    if (!(await present(w))) missing.push(w);
    if (i % 200 === 0) progress('RPO check', (i + 1) / acked.length);
  }
  progress('RPO check', 1);
  log('');

  log(`restarting ${victim.id} and checking the missing writes again...`);
  if (how === 'outage') await t.chaos({ action: 'heal', a: victim.id });
  await t.chaos({ action: 'restart', region: victim.id });
  await waitUp(victim, 20_000);
  await sleep(3000);
  const recovered = new Map<string, number>();
  for (const w of missing) {
    if (await present(w)) recovered.set(w.collection, (recovered.get(w.collection) ?? 0) + 1);
  }
  await t.traffic(true);

  const rpo = (['profiles', 'accounts'] as const).map((c) => {
    const a = acked.filter((w) => w.collection === c);
    const m = missing.filter((w) => w.collection === c);
    const oldest = m.reduce((min, w) => Math.min(min, w.ackMs), Number.POSITIVE_INFINITY);
    return {
      collection: c,
      mode: c === 'accounts' ? 'sync (majority)' : 'async',
      acked: a.length,
      missing: m.length,
      windowMs: m.length > 0 ? goneAtMs - oldest : 0,
      recoveredAfterRestart: recovered.get(c) ?? 0,
    };
  });

  const tbl = [
    table(
      ['measure', 'value'],
      [
        ['victim', `${victim.id} (${how})`],
        ['RTO: kill -> all requests served elsewhere', `${Math.round(rtoMs)} ms`],
        ['client requests after kill', after.length],
        ['client errors after kill', `${clientErrors} ${JSON.stringify(errorsByStatus)}`],
        ['declared lost after', `${Math.round((declaredLostMs - killAtMs) / 1000)} s`],
      ],
    ),
    table(
      ['collection', 'replication', 'acked writes', 'lost (RPO)', 'RPO window ms', 'back after restart'],
      rpo.map((r) => [
        r.collection,
        r.mode,
        r.acked,
        r.missing,
        Math.round(r.windowMs),
        r.recoveredAfterRestart,
      ]),
    ),
  ].join('\n\n');

  const byServed = new Map<string, [number, number][]>();
  const errors: [number, number][] = [];
  for (const r of clientReqs) {
    const x = (r.endMs - killAtMs) / 1000;
    if (!(r.status === 200 || r.status === 404)) errors.push([x, r.latencyMs]);
    else {
      const k = `served by ${r.served ?? '?'}`;
      if (!byServed.has(k)) byServed.set(k, []);
      byServed.get(k)?.push([x, r.latencyMs]);
    }
  }
  const series = [...byServed].map(([name, points]) => ({ name, points }));
  series.push({ name: 'client errors', points: errors, color: '#d62728' } as (typeof series)[number]);
  const svg = scatterSvg(
    `Failover (${how}): ${victim.id} lost under load; requests of the clients nearest to it`,
    series,
    {
      xLabel: 'seconds since the kill',
      yLabel: 'request latency (ms)',
      markers: [{ x: 0, label: `kill; RTO ${Math.round(rtoMs)} ms` }],
    },
  );
  return {
    victim: victim.id,
    how,
    errorsByStatus,
    rtoMs,
    clientRequestsAfterKill: after.length,
    clientErrors,
    rpo,
    table: tbl,
    svg,
  };
}
