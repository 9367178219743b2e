/**
 * The edge's view of every region: one health state machine per region (active probes plus
 * passive ejection), smoothed RTT, request and error counts, and the route plan built from them.
 * Time comes in as `nowMs`, so the simulator can drive it exactly as the edge does.
 */
import { greatCircleKm, type LatLon } from '../geo.js';
import {
  DEFAULT_HEALTH,
  type FailureKind,
  type HealthBugs,
  type HealthEvent,
  type HealthOptions,
  HealthState,
  type HealthTransition,
} from '../health.js';
import type { RegionId, RegionInfo } from '../types.js';
import { type PolicyContext, planRoute, type RegionView, type RoutePlan, type RouteQuery } from './policy.js';

export interface RegionStatus {
  region: RegionId;
  status: RegionView['status'];
  srttMs: number | undefined;
  /** Requests sent to the region (first tries, retries and replays). */
  requests: number;
  /** Requests that failed there: connection errors, timeouts and 5xx. */
  errors: number;
  probesOk: number;
  probesFailed: number;
  lastChangeMs: number;
  lastReason: string;
  /** The deadline of the next probe to the region (the path's RTO). */
  probeTimeoutMs: number;
  /** Enough evidence to eject, but the ejection cap keeps it up. */
  held: boolean;
}

/** How much of the table one prober may hold down at once, and the per-path starting RTT. */
export interface TableHealthOptions extends Partial<HealthOptions> {
  /**
   * Share of the regions that may be down at once (Envoy's max_ejection_percent; at least one may
   * always be). Beyond it the edge trusts the regions rather than its own probes: a prober that
   * sees half the world gone is more likely the one cut off.
   */
  maxEjectedShare?: number;
  bugs?: HealthBugs;
}

export const DEFAULT_MAX_EJECTED_SHARE = 0.5;

/**
 * A first guess at a path's RTT from the distance between its ends, used until it is measured:
 * light in fibre covers about 100 km per ms of round trip, and real routes are longer than great
 * circles (the lab's table sits between 1.3 and 2 times the straight line).
 */
export function guessRttMs(a: LatLon, b: LatLon): number {
  return Math.round((greatCircleKm(a, b) / 100) * 2) + 2;
}

export interface RegionTransition extends HealthTransition {
  region: RegionId;
}

interface Entry {
  view: RegionView;
  health: HealthState;
  stats: RegionStatus;
}

/**
 * @example
 * const table = new RoutingTable(regions, { config: cfg.edge, edgeLocation }, cfg.edge.health, now);
 * table.observe('us-east-1', { kind: 'probe-ok', rttMs: 3 }, now);
 * const plan = table.plan({ random: Math.random() });
 */
export class RoutingTable {
  private readonly entries = new Map<RegionId, Entry>();
  private readonly views: RegionView[] = [];
  private cached: RoutePlan | undefined;
  private readonly maxDown: number;
  private down = 0;
  /**
   * An ejection is allowed below the cap; one on silence also needs the other paths to be heard.
   * When a quarter of the other regions were silent within the last `silenceWindowMs` (the RTO
   * ceiling), the silence is this edge's or the network's it shares (a stalled WAN emulator, a
   * saturated machine), not the region's: each path times out at its own deadline, so one stall
   * silences them one after another, and the regions ejected in it still count. Refused and reset
   * connections are that region's alone and only meet the cap.
   */
  private readonly mayEject = (failure: FailureKind, nowMs: number): boolean => {
    if (this.down >= this.maxDown) return false;
    if (failure !== 'timeout') return true;
    let silent = 0;
    let others = 0;
    for (const e of this.entries.values()) {
      const h = e.health;
      // A region down for longer than the window is not part of this moment.
      if (h.status !== 'up' && nowMs - h.lastChangeMs > this.silenceWindowMs) continue;
      others++;
      if (h.recentlySilent(nowMs, this.silenceWindowMs)) silent++;
    }
    // Both counts include the region being judged, which is silent by definition.
    return others <= 2 || (silent - 1) * 4 < others - 1;
  };
  private readonly silenceWindowMs: number;
  readonly ctx: PolicyContext;

  constructor(
    regions: readonly RegionInfo[],
    ctx: PolicyContext,
    health: TableHealthOptions = {},
    nowMs = 0,
  ) {
    this.ctx = ctx;
    const { maxEjectedShare, bugs, ...stateOptions } = health;
    this.maxDown = Math.max(1, Math.floor(regions.length * (maxEjectedShare ?? DEFAULT_MAX_EJECTED_SHARE)));
    this.silenceWindowMs = stateOptions.maxTimeoutMs ?? DEFAULT_HEALTH.maxTimeoutMs;
    for (const r of regions) {
      const view: RegionView = { id: r.id, lat: r.lat, lon: r.lon, status: 'up', srttMs: undefined };
      const initialRttMs = stateOptions.initialRttMs ?? guessRttMs(ctx.edgeLocation, r);
      const state = new HealthState({ ...stateOptions, initialRttMs }, 'up', nowMs, bugs);
      this.entries.set(r.id, {
        view,
        health: state,
        stats: {
          region: r.id,
          status: 'up',
          srttMs: undefined,
          requests: 0,
          errors: 0,
          probesOk: 0,
          probesFailed: 0,
          lastChangeMs: nowMs,
          lastReason: state.lastReason,
          probeTimeoutMs: state.probeTimeoutMs(),
          held: false,
        },
      });
      this.views.push(view);
    }
  }

  get regionIds(): RegionId[] {
    return this.views.map((v) => v.id);
  }

  has(region: RegionId): boolean {
    return this.entries.has(region);
  }

  isUp(region: RegionId): boolean {
    return this.entries.get(region)?.view.status === 'up';
  }

  /** Whether as many regions are down as the cap allows (any further ejection is held). */
  atEjectionCap(): boolean {
    return this.down >= this.maxDown;
  }

  /** The deadline of the next probe to `region`: its path's RTO. */
  probeTimeoutMs(region: RegionId): number {
    return this.entries.get(region)?.health.probeTimeoutMs() ?? 1000;
  }

  /**
   * The plan for one request. Policies that depend on nothing but the table (latency, failover)
   * reuse one plan until the table changes; callers must not mutate it.
   */
  plan(query: RouteQuery): RoutePlan {
    const policy = this.ctx.config.policy;
    if (query.stickyRegion !== undefined || policy === 'geo' || policy === 'weighted') {
      return planRoute(this.ctx, this.views, query);
    }
    this.cached ??= planRoute(this.ctx, this.views, query);
    return this.cached;
  }

  /** Counts a request sent to `region` (call it when it leaves, so `requests` means "sent to"). */
  dispatched(region: RegionId): void {
    const e = this.entries.get(region);
    if (e) e.stats.requests++;
  }

  /** Feeds a probe result or a request outcome; returns the health transition when there is one. */
  observe(region: RegionId, event: HealthEvent, nowMs: number): RegionTransition | undefined {
    const e = this.entries.get(region);
    if (!e) return undefined;
    if (event.kind === 'request-failed') e.stats.errors++;
    else if (event.kind === 'probe-ok') e.stats.probesOk++;
    else if (event.kind === 'probe-failed' || event.kind === 'probe-unhealthy') e.stats.probesFailed++;
    const t = e.health.observe(event, nowMs, this.mayEject);
    if (t) this.down += t.to === 'down' ? 1 : -1;
    if (e.view.status !== e.health.status || e.view.srttMs !== e.health.srttMs) this.cached = undefined;
    e.view.status = e.health.status;
    e.view.srttMs = e.health.srttMs;
    e.stats.status = e.health.status;
    e.stats.srttMs = e.health.srttMs;
    e.stats.lastChangeMs = e.health.lastChangeMs;
    e.stats.lastReason = e.health.lastReason;
    e.stats.probeTimeoutMs = e.health.probeTimeoutMs();
    e.stats.held = e.health.held;
    return t ? { ...t, region } : undefined;
  }

  /** A copy of every region's status, in configuration order. */
  snapshot(): RegionStatus[] {
    return this.views.map((v) => ({ ...this.entries.get(v.id)!.stats }));
  }
}
