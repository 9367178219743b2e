/**
 * Rolling statistics of the lab: per-second buckets of client requests (by edge and by the region
 * that served them), latency quantiles, replication-lag samples per link, and an event timeline.
 * Everything is bounded: old buckets and samples fall off, so a lab left running for days stays small.
 */

export interface RequestSample {
  atMs: number;
  /** The edge the client reached (region id), or undefined when no edge answered. */
  edge: string | undefined;
  /** The region that served the request (Meridian-Region), when it was served. */
  served: string | undefined;
  op: string;
  status: number;
  latencyMs: number;
}

export interface LabEvent {
  atMs: number;
  kind: 'chaos' | 'process' | 'health' | 'lab' | 'traffic';
  text: string;
}

interface Bucket {
  sec: number;
  byEdge: Map<string, number>;
  byServed: Map<string, number>;
  flows: Map<string, number>;
  errors: Map<string, number>;
  latencies: Map<string, number[]>;
  total: number;
  totalErrors: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

const inc = (m: Map<string, number>, k: string, by = 1): void => {
  m.set(k, (m.get(k) ?? 0) + by);
};

export interface RegionRates {
  /** Requests per second served by this region's node (last window). */
  servedRps: number;
  /** Requests per second that entered through this region's edge. */
  edgeRps: number;
  errorRps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface StatsSnapshot {
  windowS: number;
  totalRps: number;
  errorRps: number;
  regions: Record<string, RegionRates>;
  /** `edge>served` -> requests per second. */
  flows: Record<string, number>;
  lag: Record<string, { lastMs: number; p50Ms: number; p99Ms: number; samples: number }>;
  /** Per second for the last `historyS` seconds: [epoch seconds, total rps, error rps, per-region served rps...]. */
  history: {
    sec: number;
    total: number;
    errors: number;
    served: Record<string, number>;
    p99Ms: Record<string, number>;
  }[];
}

/**
 * @example
 *   const s = new LabStats(); s.record({ atMs: Date.now(), edge: 'us-east-1', served: 'us-east-1', op: 'get', status: 200, latencyMs: 12 });
 *   s.snapshot(Date.now(), ['us-east-1']).regions['us-east-1'].servedRps
 */
export class LabStats {
  private readonly buckets: Bucket[] = [];
  private readonly lagSamples = new Map<string, { atMs: number; lagMs: number }[]>();
  readonly events: LabEvent[] = [];
  private eventListeners = new Set<(e: LabEvent) => void>();

  constructor(
    private readonly historyS = 120,
    private readonly maxEvents = 300,
    private readonly maxLagSamples = 2000,
  ) {}

  private bucket(sec: number): Bucket {
    let b = this.buckets[this.buckets.length - 1];
    if (!b || b.sec !== sec) {
      b = {
        sec,
        byEdge: new Map(),
        byServed: new Map(),
        flows: new Map(),
        errors: new Map(),
        latencies: new Map(),
        total: 0,
        totalErrors: 0,
      };
      this.buckets.push(b);
      while (this.buckets.length > 0 && (this.buckets[0] as Bucket).sec <= sec - this.historyS)
        this.buckets.shift();
    }
    return b;
  }

  record(s: RequestSample): void {
    const b = this.bucket(Math.floor(s.atMs / 1000));
    b.total++;
    const ok = s.status >= 200 && s.status < 500 && s.status !== 0;
    if (s.edge) inc(b.byEdge, s.edge);
    if (s.served && ok) {
      inc(b.byServed, s.served);
      if (s.edge) inc(b.flows, `${s.edge}>${s.served}`);
      const key = s.served;
      let l = b.latencies.get(key);
      if (!l) {
        l = [];
        b.latencies.set(key, l);
      }
      if (l.length < 500) l.push(s.latencyMs);
    }
    if (!ok) {
      b.totalErrors++;
      inc(b.errors, s.edge ?? 'none');
    }
  }

  recordLag(from: string, to: string, atMs: number, lagMs: number): void {
    const k = `${from}>${to}`;
    let l = this.lagSamples.get(k);
    if (!l) {
      l = [];
      this.lagSamples.set(k, l);
    }
    l.push({ atMs, lagMs });
    if (l.length > this.maxLagSamples) l.splice(0, l.length - this.maxLagSamples);
  }

  lagSamplesOf(from: string, to: string, sinceMs = 0): number[] {
    return (this.lagSamples.get(`${from}>${to}`) ?? []).filter((s) => s.atMs >= sinceMs).map((s) => s.lagMs);
  }

  event(kind: LabEvent['kind'], text: string, atMs = Date.now()): LabEvent {
    const e = { atMs, kind, text };
    this.events.push(e);
    if (this.events.length > this.maxEvents) this.events.splice(0, this.events.length - this.maxEvents);
    for (const f of this.eventListeners) f(e);
    return e;
  }

  onEvent(f: (e: LabEvent) => void): () => void {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  /** Rates over the last `windowS` complete-ish seconds (the current second included). */
  snapshot(nowMs: number, regions: readonly string[], windowS = 5): StatsSnapshot {
    const nowSec = Math.floor(nowMs / 1000);
    const recent = this.buckets.filter((b) => b.sec > nowSec - windowS);
    // The current second is partial: count the window as windowS-1 full seconds plus the fraction.
    const span = Math.max(1, windowS - 1 + (nowMs % 1000) / 1000);
    const out: StatsSnapshot = {
      windowS,
      totalRps: 0,
      errorRps: 0,
      regions: {},
      flows: {},
      lag: {},
      history: [],
    };
    // Latency over the same window as the rates, so a region that stopped serving stops showing numbers.
    const latWindow = recent;
    for (const r of regions) {
      let served = 0;
      let edge = 0;
      let errors = 0;
      for (const b of recent) {
        served += b.byServed.get(r) ?? 0;
        edge += b.byEdge.get(r) ?? 0;
        errors += b.errors.get(r) ?? 0;
      }
      const lats = latWindow.flatMap((b) => b.latencies.get(r) ?? []).sort((a, b) => a - b);
      out.regions[r] = {
        servedRps: served / span,
        edgeRps: edge / span,
        errorRps: errors / span,
        p50Ms: quantile(lats, 0.5),
        p99Ms: quantile(lats, 0.99),
      };
    }
    for (const b of recent) {
      out.totalRps += b.total;
      out.errorRps += b.totalErrors;
      for (const [k, v] of b.flows) out.flows[k] = (out.flows[k] ?? 0) + v;
    }
    out.totalRps /= span;
    out.errorRps /= span;
    for (const k of Object.keys(out.flows)) out.flows[k] = (out.flows[k] as number) / span;
    for (const [k, samples] of this.lagSamples) {
      const last60 = samples.filter((s) => s.atMs > nowMs - 60_000).map((s) => s.lagMs);
      const sorted = [...last60].sort((a, b) => a - b);
      const last = samples[samples.length - 1];
      out.lag[k] = {
        lastMs: last ? last.lagMs : Number.NaN,
        p50Ms: quantile(sorted, 0.5),
        p99Ms: quantile(sorted, 0.99),
        samples: last60.length,
      };
    }
    for (const b of this.buckets.slice(-60)) {
      if (b.sec >= nowSec) continue;
      const p99Ms: Record<string, number> = {};
      for (const [r, l] of b.latencies)
        p99Ms[r] = quantile(
          [...l].sort((x, y) => x - y),
          0.99,
        );
      out.history.push({
        sec: b.sec,
        total: b.total,
        errors: b.totalErrors,
        served: Object.fromEntries(b.byServed),
        p99Ms,
      });
    }
    return out;
  }
}
