/**
 * Which regions the GeoDNS server may answer, judged from more than one vantage point: its own
 * probes of each region's edge (`GET /healthz`, fed to the core HealthState machine the edges use,
 * deadlines from each path's RTT) are one vote, and every edge's view of every region (its
 * `/edge/status`, fetched on the same timer) is another. A region is withdrawn only when a quorum
 * of the votes cast says it is down (core/health.ts quorumDown); an edge that cannot be reached,
 * or whose view is stale, abstains. One exception: an edge whose address refuses connections is
 * withdrawn on the DNS's own probes, since the edges' views are about the regions' nodes, not
 * about each other's edges.
 */
import { request } from 'undici';
import { z } from 'zod';
import type { MeridianConfig } from '../../adapters/config.js';
import { systemClock, systemTimers } from '../../adapters/system.js';
import {
  classifyFailure,
  type HealthEvent,
  HealthState,
  type HealthStatus,
  type HealthTransition,
  PROBE_ABANDON_MS,
  quorumDown,
  type Vote,
} from '../../core/health.js';
import type { Clock, TimerHandle, Timers } from '../../core/ports.js';
import type { RegionTarget } from './zone.js';

export type ProbeResult = HealthEvent & { kind: 'probe-ok' | 'probe-failed' | 'probe-unhealthy' };
export type Probe = (url: string, timeoutMs: number) => Promise<ProbeResult>;
/** One edge's view of every region: region id -> status; undefined when it could not be had. */
export type ViewFetch = (url: string, timeoutMs: number) => Promise<Map<string, HealthStatus> | undefined>;

/**
 * GET url: 2xx is ok, any other status unhealthy (503: draining), no answer in time failed. The
 * deadline is judged one event-loop turn after its timer fires, so an answer that arrived while
 * this process was stalled is read first, and how late the timer fired goes with the verdict.
 */
export const httpProbe: Probe = (url, timeoutMs) =>
  new Promise<ProbeResult>((resolve) => {
    const started = performance.now();
    const abort = new AbortController();
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      const lateMs = performance.now() - started - timeoutMs;
      setImmediate(() => {
        if (done) return;
        finish({ kind: 'probe-failed', reason: `no answer in ${timeoutMs} ms`, failure: 'timeout', lateMs });
      });
    }, timeoutMs);
    // The verdict is given at the deadline, but the request is abandoned only later: aborting
    // destroys the connection, and the next probe would pay a new handshake (edge prober, same rule).
    const abandon = setTimeout(() => abort.abort(), Math.max(timeoutMs, PROBE_ABANDON_MS));
    abandon.unref();
    request(url, { method: 'GET', signal: abort.signal })
      .then(async (res) => {
        await res.body.dump();
        const rttMs = performance.now() - started;
        clearTimeout(abandon);
        if (res.statusCode >= 200 && res.statusCode < 300) finish({ kind: 'probe-ok', rttMs });
        else finish({ kind: 'probe-unhealthy', reason: `HTTP ${res.statusCode}` });
      })
      .catch((e: unknown) => {
        clearTimeout(abandon);
        const err = e as { code?: string; name?: string; message?: string };
        const reason = err.code ?? err.name ?? err.message ?? 'error';
        finish({ kind: 'probe-failed', reason, failure: classifyFailure(`${reason} ${err.message ?? ''}`) });
      });
  });

/** What the DNS reads of an edge's /edge/status: nothing else, and nothing unchecked. */
const edgeView = z.object({
  regions: z
    .array(z.object({ region: z.string().max(64), status: z.enum(['up', 'down']) }).passthrough())
    .max(1000),
});
const MAX_VIEW_BYTES = 256 * 1024;

/** GET an edge's /edge/status and keep each region's status; a bad or oversized answer is no view. */
export const httpViewFetch: ViewFetch = async (url, timeoutMs) => {
  try {
    const res = await request(url, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return undefined;
    }
    let text = '';
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > MAX_VIEW_BYTES) {
        res.body.destroy();
        return undefined;
      }
    }
    const parsed = edgeView.safeParse(JSON.parse(text));
    if (!parsed.success) return undefined;
    return new Map(parsed.data.regions.map((r) => [r.region, r.status]));
  } catch {
    return undefined;
  }
};

export interface RegionHealthView {
  region: string;
  status: HealthStatus;
  srttMs: number | undefined;
  reason: string;
  sinceMs: number;
  probeUrl: string | undefined;
  /** The DNS's own verdict from its probes, before the quorum. */
  probed: HealthStatus | undefined;
  /** Each vantage point's vote: `dns` and every edge by its region id. */
  votes: Record<string, Vote>;
}

type Settings = MeridianConfig['edge']['health'];

interface EdgeViewEntry {
  url: string;
  view: Map<string, HealthStatus> | undefined;
  atMs: number;
}

/**
 * Probes every region that has a health URL and reads every edge's view; regions without a health
 * URL (no edge, static addresses) count as healthy.
 * @example
 * const health = new EdgeHealthMonitor(plan.regions, cfg.edge.health);
 * await health.start(); // one probe round first, so the first answer already knows who is down
 * health.isHealthy('eu-west-1');
 */
export class EdgeHealthMonitor {
  private readonly states = new Map<string, HealthState>();
  private readonly views = new Map<string, EdgeViewEntry>();
  private readonly verdicts = new Map<string, { status: HealthStatus; reason: string; sinceMs: number }>();
  private readonly timers = new Map<string, TimerHandle>();
  private readonly listeners: Array<(region: string, t: HealthTransition) => void> = [];
  private running = false;

  constructor(
    private readonly regions: RegionTarget[],
    private readonly settings: Settings,
    private readonly deps: { probe?: Probe; fetchView?: ViewFetch; clock?: Clock; timers?: Timers } = {},
  ) {
    for (const r of regions) {
      if (r.healthUrl !== undefined) {
        this.views.set(r.id, { url: new URL('/edge/status', r.healthUrl).href, view: undefined, atMs: 0 });
      }
    }
  }

  private get probe(): Probe {
    return this.deps.probe ?? httpProbe;
  }

  private get fetchView(): ViewFetch {
    return this.deps.fetchView ?? httpViewFetch;
  }

  private get clock(): Clock {
    return this.deps.clock ?? systemClock;
  }

  /** A view older than this abstains: three missed fetches and the longest probe deadline. */
  private get staleMs(): number {
    return 3 * this.settings.intervalMs + (this.settings.maxTimeoutMs ?? 2000);
  }

  /** Runs one probe round (a region whose first probe fails starts down), then probes on a timer. */
  async start(): Promise<void> {
    this.running = true;
    const probed = this.regions.filter((r) => r.healthUrl !== undefined);
    await Promise.all([
      ...probed.map(async (r) => {
        const state = new HealthState(this.settings, 'up', this.clock.nowMs());
        const first = await this.probe(r.healthUrl as string, state.probeTimeoutMs());
        const now = this.clock.nowMs();
        const stalled = first.kind === 'probe-failed' && (first.lateMs ?? 0) > state.options.stallMs;
        if (first.kind === 'probe-ok' || stalled) {
          state.observe(first, now);
          state.lastReason = stalled ? 'first probe inconclusive (stalled)' : 'first probe ok';
        } else {
          state.status = 'down';
          state.lastReason = `first probe: ${first.reason}`;
        }
        state.lastChangeMs = now;
        this.states.set(r.id, state);
        this.schedule(r.id, () => this.probeOnce(r));
      }),
      ...[...this.views.keys()].map(async (edge) => {
        await this.refreshView(edge);
        this.schedule(`view:${edge}`, () => this.refreshView(edge));
      }),
    ]);
    this.recompute();
  }

  private schedule(key: string, run: () => Promise<void>): void {
    if (!this.running) return;
    const timers = this.deps.timers ?? systemTimers;
    this.timers.set(
      key,
      timers.setTimeout(() => {
        void run().finally(() => this.schedule(key, run));
      }, this.settings.intervalMs),
    );
  }

  private async probeOnce(r: RegionTarget): Promise<void> {
    const state = this.states.get(r.id);
    if (!state) return;
    const result = await this.probe(r.healthUrl as string, state.probeTimeoutMs());
    if (!this.running) return;
    state.observe(result, this.clock.nowMs());
    this.recompute();
  }

  private async refreshView(edge: string): Promise<void> {
    const entry = this.views.get(edge)!;
    const timeoutMs = this.states.get(edge)?.probeTimeoutMs() ?? this.settings.timeoutMs;
    const view = await this.fetchView(entry.url, timeoutMs);
    if (!this.running) return;
    // A failed fetch abstains at once: a lost region's edge must not keep voting for itself.
    entry.view = view;
    entry.atMs = this.clock.nowMs();
    this.recompute();
  }

  /** Every vantage point's vote on `region`: the DNS's own probes, then each edge's view. */
  votes(region: string): Record<string, Vote> {
    const out: Record<string, Vote> = {};
    const own = this.states.get(region);
    if (own) out.dns = own.status;
    const now = this.clock.nowMs();
    for (const [edge, e] of this.views) {
      const s = e.view?.get(region);
      out[edge] = s === undefined || now - e.atMs > this.staleMs ? 'abstain' : s;
    }
    return out;
  }

  private recompute(): void {
    const now = this.clock.nowMs();
    for (const r of this.regions) {
      if (r.healthUrl === undefined) continue;
      const q = quorumDown(Object.values(this.votes(r.id)), this.settings.quorum);
      // The edges vote on the region's node; only the DNS probes its edge. An edge that refuses
      // connections (its process is gone) is no matter of opinion: its address must not be answered.
      const own = this.states.get(r.id);
      const edgeGone = own?.status === 'down' && own.lastFailure === 'refused';
      const status: HealthStatus = q.down || edgeGone ? 'down' : 'up';
      const prev = this.verdicts.get(r.id);
      const reason = edgeGone
        ? `its edge refuses connections (${q.downVotes} of ${q.cast} vantage points see it down)`
        : `${q.downVotes} of ${q.cast} vantage points see it down`;
      if (prev === undefined) {
        this.verdicts.set(r.id, { status, reason, sinceMs: now });
        continue;
      }
      if (prev.status === status) continue;
      this.verdicts.set(r.id, { status, reason, sinceMs: now });
      const t: HealthTransition = { from: prev.status, to: status, reason, atMs: now };
      for (const l of this.listeners) l(r.id, t);
    }
  }

  onChange(listener: (region: string, t: HealthTransition) => void): void {
    this.listeners.push(listener);
  }

  isHealthy(region: string): boolean {
    const v = this.verdicts.get(region);
    return v === undefined ? this.regions.some((r) => r.id === region) : v.status === 'up';
  }

  view(): RegionHealthView[] {
    return this.regions.map((r) => {
      const s = this.states.get(r.id);
      const v = this.verdicts.get(r.id);
      return {
        region: r.id,
        status: v?.status ?? 'up',
        srttMs: s?.srttMs,
        reason: v ? `${v.reason}; own probes: ${s?.lastReason ?? '-'}` : 'no health URL: always answered',
        sinceMs: v?.sinceMs ?? 0,
        probeUrl: r.healthUrl,
        probed: s?.status,
        votes: this.votes(r.id),
      };
    });
  }

  stop(): void {
    this.running = false;
    const timers = this.deps.timers ?? systemTimers;
    for (const h of this.timers.values()) timers.clearTimeout(h);
    this.timers.clear();
  }
}
