/**
 * The figures of a run: operations by outcome, conflicts resolved, replication lag per link
 * (p50/p99, origin commit to durable apply, in virtual time), the async RPO when a region is lost
 * for good, stale reads of sessions without tokens, and network and fault counts.
 */
import { seqOf } from '../core/version.js';
import { sessionAnomalies } from './checkers/sessions.js';
import { type History, type OpResult, survivingVersion } from './history.js';
import type { NetworkStats } from './network.js';

export interface LagFigure {
  link: string;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface Figures {
  ops: Record<OpResult | 'total', number>;
  opsByKind: Record<string, number>;
  conflicts: number;
  clockSkewRejections: number;
  syncTimeouts: number;
  snapshots: number;
  clientTimeouts: number;
  lag: LagFigure[];
  /** Acknowledged async writes lost with a region lost for good, and the window they span. */
  rpo: { region: string; lostWrites: number; spanMs: number; oldestBeforeLossMs: number } | undefined;
  /** Reads of sessions without a token that went back in time (what tokens prevent). */
  staleReadsWithoutToken: number;
  network: NetworkStats;
  faults: Record<string, number>;
  eventsRun: number;
  simulatedMs: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function computeFigures(
  h: History,
  run: {
    lagMs: Map<string, number[]>;
    counts: {
      conflicts: number;
      clockSkew: number;
      syncTimeouts: number;
      snapshots: number;
      clientTimeouts: number;
    };
    network: NetworkStats;
    eventsRun: number;
    durationMs: number;
  },
): Figures {
  const ops: Figures['ops'] = {
    total: 0,
    pending: 0,
    ok: 0,
    indefinite: 0,
    refused: 0,
    unavailable: 0,
    error: 0,
  };
  const opsByKind: Record<string, number> = {};
  for (const op of h.ops) {
    ops.total++;
    ops[op.result]++;
    opsByKind[op.kind] = (opsByKind[op.kind] ?? 0) + 1;
  }
  const lag: LagFigure[] = [];
  for (const [link, samples] of [...run.lagMs].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const s = Float64Array.from(samples).sort();
    const arr = Array.from(s);
    lag.push({
      link,
      samples: arr.length,
      p50Ms: percentile(arr, 50),
      p99Ms: percentile(arr, 99),
      maxMs: arr[arr.length - 1] ?? 0,
    });
  }
  let rpo: Figures['rpo'];
  const surviving = survivingVersion(h);
  for (const [region, lostAtMs] of h.lost) {
    const asyncColls = new Set(
      h.collections.filter((c) => c.replication.mode === 'async').map((c) => c.name),
    );
    const lost = h.ops.filter(
      (op) =>
        op.result === 'ok' &&
        op.kind !== 'get' &&
        asyncColls.has(op.collection) &&
        op.change?.origin === region &&
        op.change.seq > seqOf(surviving, region),
    );
    const times = lost.map((op) => op.endAtMs);
    const first = times.length > 0 ? Math.min(...times) : lostAtMs;
    const last = times.length > 0 ? Math.max(...times) : lostAtMs;
    rpo = { region, lostWrites: lost.length, spanMs: last - first, oldestBeforeLossMs: lostAtMs - first };
  }
  const faults: Record<string, number> = {};
  for (const f of h.faults) faults[f.fault.kind] = (faults[f.fault.kind] ?? 0) + 1;
  return {
    ops,
    opsByKind,
    conflicts: run.counts.conflicts,
    clockSkewRejections: run.counts.clockSkew,
    syncTimeouts: run.counts.syncTimeouts,
    snapshots: run.counts.snapshots,
    clientTimeouts: run.counts.clientTimeouts,
    lag,
    rpo,
    staleReadsWithoutToken: sessionAnomalies(h, false).length,
    network: run.network,
    faults,
    eventsRun: run.eventsRun,
    simulatedMs: h.endAtMs,
  };
}
