/**
 * Health: do the edges and GeoDNS tell the truth about a live lab? For a while with every region
 * up (optionally with traffic) it counts each edge's ejections of each region (all of them false:
 * nothing was down) from the edges' own transition counters, and GeoDNS withdrawals; then it kills
 * one region's node and times its ejection at every edge and its withdrawal at GeoDNS, restarts it
 * and times the recovery. GeoDNS is judged by the DNS server's own health code (EdgeHealthMonitor:
 * its probes plus every edge's view, by quorum) run here over the lab's config.
 */
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { request } from 'undici';
import type { MeridianConfig } from '../../adapters/config.js';
import { EdgeHealthMonitor } from '../../servers/dns/health.js';
import { zonePlan } from '../../servers/dns/zone.js';
import { barsSvg, table } from '../svg.js';
import { sleep } from './http.js';
import type { LabTarget } from './target.js';

export interface HealthOptions {
  cfg: MeridianConfig;
  durationS: number;
  traffic: boolean;
  /** Region whose node is killed after the quiet phase (undefined: none). */
  kill: string | undefined;
  /**
   * How the region is lost: `crash` kills its node (SIGKILL) and restarts it; `blackhole` cuts every
   * WAN link to and from it (nothing answers, nothing is refused) and heals them. Default crash.
   */
  how?: 'crash' | 'blackhole';
  /** After the kill, how long to wait for detection, and after the restart, for recovery. */
  afterS: number;
  log: (s: string) => void;
}

export interface HealthResult {
  durationS: number;
  traffic: boolean;
  /** edge -> target -> ejections while every region was live (all false). */
  falseEjections: Record<string, Record<string, number>>;
  falseEjectionsTotal: number;
  dnsWithdrawals: number;
  /** Probe deadlines at the end of the quiet phase: edge -> target -> ms. */
  deadlinesMs: Record<string, Record<string, number>>;
  /**
   * What the machine was doing during the count (diagnostics, not targets): the one-minute load
   * average's range, and the event-loop delay of this process, which hosts the WAN emulator when
   * the experiment started the lab itself (a stall here holds every link at once).
   */
  diagnostics: { loadAverage: [number, number]; loopDelayP99Ms: number; loopDelayMaxMs: number };
  kill?: {
    region: string;
    how: 'crash' | 'blackhole';
    /** edge -> ms from the kill to its ejection (undefined: not within afterS). */
    detectionMs: Record<string, number | undefined>;
    dnsDetectionMs: number | undefined;
    recoveryMs: Record<string, number | undefined>;
    dnsRecoveryMs: number | undefined;
  };
  table: string;
  svg: string;
}

interface EdgeRegion {
  region: string;
  status: 'up' | 'down';
  probeTimeoutMs?: number;
}

async function edgeStatus(url: string): Promise<EdgeRegion[] | undefined> {
  try {
    const res = await request(`${url}/edge/status`, { headersTimeout: 2000, bodyTimeout: 2000 });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return undefined;
    }
    return ((await res.body.json()) as { regions: EdgeRegion[] }).regions;
  } catch {
    return undefined;
  }
}

/** Ejections per target region from the edge's transition counter. */
async function ejectionCounts(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const res = await request(`${url}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 });
    const text = await res.body.text();
    for (const m of text.matchAll(/^meridian_edge_health_transitions_total\{([^}]*)\} (\d+)/gm)) {
      const labels = m[1] ?? '';
      if (!/to="down"/.test(labels)) continue;
      const region = /region="([^"]+)"/.exec(labels)?.[1];
      if (region) out.set(region, Number(m[2]));
    }
  } catch {
    // An edge that cannot be scraped counts nothing; its status polls show it missing.
  }
  return out;
}

/** @example const r = await health(target, { cfg, durationS: 60, traffic: false, kill: 'eu-west-1', afterS: 10, log }); */
export async function health(t: LabTarget, o: HealthOptions): Promise<HealthResult> {
  const edges = t.plan.regions.map((r) => ({ id: r.id, url: r.edgeUrl }));
  const ids = edges.map((e) => e.id);
  const dns = new EdgeHealthMonitor(zonePlan(o.cfg, 1).regions, o.cfg.edge.health);
  let dnsWithdrawals = 0;
  const dnsDown = new Map<string, number>();
  const dnsUp = new Map<string, number>();
  dns.onChange((region, tr) => {
    if (tr.to === 'down') {
      dnsWithdrawals++;
      dnsDown.set(region, Date.now());
    } else dnsUp.set(region, Date.now());
  });
  await dns.start();
  await t.traffic(o.traffic);

  // A lab that just started may still hold regions down from before they listened: the count
  // starts once every edge sees every region up (or after a minute, saying so).
  const settleUntil = Date.now() + 60_000;
  for (;;) {
    const views = await Promise.all(edges.map((e) => edgeStatus(e.url)));
    const down = views.flatMap((v, i) =>
      (v ?? [{ region: '?', status: 'down' as const }])
        .filter((r) => r.status === 'down')
        .map((r) => `${edges[i]!.id}>${r.region}`),
    );
    if (down.length === 0) break;
    if (Date.now() > settleUntil) {
      o.log(`warning: still held down before the count starts: ${down.join(' ')}`);
      break;
    }
    await sleep(500);
  }
  const dnsWithdrawalsBefore = dnsWithdrawals;
  const before = new Map(
    await Promise.all(edges.map(async (e) => [e.id, await ejectionCounts(e.url)] as const)),
  );
  const startMs = Date.now();
  const endMs = startMs + o.durationS * 1000;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let loadMin = Number.POSITIVE_INFINITY;
  let loadMax = 0;
  o.log(`quiet phase: ${o.durationS} s, ${ids.length} regions, traffic ${o.traffic ? 'on' : 'off'}`);
  let lastLine = 0;
  while (Date.now() < endMs) {
    await sleep(1000);
    const load = loadavg()[0] ?? 0;
    loadMin = Math.min(loadMin, load);
    loadMax = Math.max(loadMax, load);
    if (Date.now() - lastLine >= 10_000 || Date.now() >= endMs) {
      lastLine = Date.now();
      const views = await Promise.all(edges.map((e) => edgeStatus(e.url)));
      const down = views.flatMap((v, i) =>
        (v ?? []).filter((r) => r.status === 'down').map((r) => `${edges[i]!.id}>${r.region}`),
      );
      const s = Math.round((Date.now() - startMs) / 1000);
      o.log(
        `  ${s}s/${o.durationS}s: held down now: ${down.length === 0 ? 'none' : down.join(' ')}; GeoDNS withdrawals so far: ${dnsWithdrawals - dnsWithdrawalsBefore}`,
      );
    }
  }
  loop.disable();
  const diagnostics: HealthResult['diagnostics'] = {
    loadAverage: [Math.round(loadMin * 10) / 10, Math.round(loadMax * 10) / 10],
    loopDelayP99Ms: Math.round(loop.percentile(99) / 1e5) / 10,
    loopDelayMaxMs: Math.round(loop.max / 1e5) / 10,
  };
  const afterCounts = new Map(
    await Promise.all(edges.map(async (e) => [e.id, await ejectionCounts(e.url)] as const)),
  );
  const falseEjections: Record<string, Record<string, number>> = {};
  let falseEjectionsTotal = 0;
  for (const e of ids) {
    falseEjections[e] = {};
    for (const r of ids) {
      const n = (afterCounts.get(e)?.get(r) ?? 0) - (before.get(e)?.get(r) ?? 0);
      falseEjections[e]![r] = n;
      falseEjectionsTotal += n;
    }
  }
  const quietDnsWithdrawals = dnsWithdrawals - dnsWithdrawalsBefore;
  const deadlinesMs: Record<string, Record<string, number>> = {};
  for (const [i, v] of (await Promise.all(edges.map((e) => edgeStatus(e.url)))).entries()) {
    deadlinesMs[ids[i]!] = Object.fromEntries(
      (v ?? []).map((r) => [r.region, r.probeTimeoutMs ?? Number.NaN]),
    );
  }

  let kill: HealthResult['kill'];
  if (o.kill) {
    const victim = o.kill;
    const how = o.how ?? 'crash';
    // A blackhole cuts the WAN: the victim's own edge reaches its node without it and is not asked.
    const watched = how === 'blackhole' ? ids.filter((e) => e !== victim) : ids;
    o.log(how === 'crash' ? `killing ${victim}'s node` : `cutting every WAN link of ${victim} (blackhole)`);
    const detectionMs: Record<string, number | undefined> = {};
    const recoveryMs: Record<string, number | undefined> = {};
    const watch = async (
      want: 'up' | 'down',
      since: number,
      into: Record<string, number | undefined>,
      dnsSeen: () => number | undefined,
    ) => {
      const deadline = since + o.afterS * 1000;
      while (
        Date.now() < deadline &&
        (watched.some((e) => into[e] === undefined) || (dnsSeen() ?? 0) < since)
      ) {
        const views = await Promise.all(
          edges.map((e) =>
            into[e.id] === undefined && watched.includes(e.id) ? edgeStatus(e.url) : undefined,
          ),
        );
        const now = Date.now();
        for (const [i, v] of views.entries()) {
          if (v?.find((r) => r.region === victim)?.status === want) into[ids[i]!] ??= now - since;
        }
        await sleep(25);
      }
    };
    const killedAt = Date.now();
    if (how === 'crash') await t.chaos({ action: 'kill', region: victim });
    else await t.chaos({ action: 'partition', a: victim });
    await watch('down', killedAt, detectionMs, () => dnsDown.get(victim));
    const dnsSeen = dnsDown.get(victim);
    const dnsDetectionMs = dnsSeen !== undefined && dnsSeen >= killedAt ? dnsSeen - killedAt : undefined;
    let restartAt: number;
    if (how === 'crash') {
      o.log(`restarting ${victim}`);
      await t.chaos({ action: 'restart', region: victim });
      // From the moment the restarted node answers: how long a process takes to start on a loaded
      // machine is not what is measured.
      const nodeUrl = t.plan.regions.find((r) => r.id === victim)?.nodeUrl;
      const listenBy = Date.now() + 60_000;
      while (nodeUrl && Date.now() < listenBy) {
        const ok = await request(`${nodeUrl}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 })
          .then(async (r) => {
            await r.body.dump();
            return r.statusCode === 200;
          })
          .catch(() => false);
        if (ok) break;
        await sleep(50);
      }
      restartAt = Date.now();
    } else {
      o.log(`healing ${victim}'s links`);
      await t.chaos({ action: 'heal', a: victim });
      restartAt = Date.now();
    }
    await watch('up', restartAt, recoveryMs, () => dnsUp.get(victim));
    const dnsBack = dnsUp.get(victim);
    kill = {
      region: victim,
      how,
      detectionMs,
      dnsDetectionMs,
      recoveryMs,
      dnsRecoveryMs: dnsBack !== undefined && dnsBack >= restartAt ? dnsBack - restartAt : undefined,
    };
  }
  dns.stop();
  await t.traffic(true);

  const fmt = (v: number | undefined) => (v === undefined ? 'not seen' : `${v} ms`);
  const rows = ids.map((e) => [
    e,
    ...ids.map((r) => falseEjections[e]![r]!),
    Object.values(falseEjections[e]!).reduce((a, b) => a + b, 0),
  ]);
  let text = `ejections of live regions in ${o.durationS} s (rows: edge, columns: region)\n`;
  text += table(['edge', ...ids, 'total'], rows);
  text += `\ntotal false ejections: ${falseEjectionsTotal}; GeoDNS withdrawals of live regions: ${quietDnsWithdrawals}\n`;
  text += `machine during the count: load average ${diagnostics.loadAverage[0]}-${diagnostics.loadAverage[1]}; this process's event-loop delay p99 ${diagnostics.loopDelayP99Ms} ms, max ${diagnostics.loopDelayMaxMs} ms\n`;
  if (kill) {
    const local = (e: string) => kill!.how === 'blackhole' && e === kill!.region;
    text += `\n${kill.region} ${kill.how === 'crash' ? 'killed' : 'blackholed'}: detection and recovery per vantage point\n`;
    text += table(
      ['vantage point', 'ejected after', kill.how === 'crash' ? 'back after restart' : 'back after heal'],
      [
        ...ids.map((e) =>
          local(e)
            ? [e, 'n/a (no WAN between them)', 'n/a']
            : [e, fmt(kill!.detectionMs[e]), fmt(kill!.recoveryMs[e])],
        ),
        ['GeoDNS', fmt(kill.dnsDetectionMs), fmt(kill.dnsRecoveryMs)],
      ],
    );
  }
  const svg = barsSvg(
    `Health over ${o.durationS} s: false ejections per edge${kill ? `, and detection of ${kill.region} killed` : ''}`,
    ids.map((e) => ({
      label: e,
      bars: [
        { name: 'false ejections', value: Object.values(falseEjections[e]!).reduce((a, b) => a + b, 0) },
        ...(kill ? [{ name: 'detection (s)', value: (kill.detectionMs[e] ?? 0) / 1000 }] : []),
      ],
    })),
    { yLabel: 'count / seconds' },
  );
  return {
    durationS: o.durationS,
    traffic: o.traffic,
    falseEjections,
    falseEjectionsTotal,
    dnsWithdrawals: quietDnsWithdrawals,
    deadlinesMs,
    diagnostics,
    ...(kill ? { kill } : {}),
    table: text,
    svg,
  };
}
