/**
 * The edge's view of every region: one health state machine per region (active probes plus
 * passive ejection), smoothed RTT, request and error counts, and the route plan built from them.
 * Time comes in as `nowMs`, so the simulator can drive it exactly as the edge does.
 */
import { type HealthEvent, type HealthOptions, HealthState, type HealthTransition } from '../health.js';
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
  readonly ctx: PolicyContext;

  constructor(
    regions: readonly RegionInfo[],
    ctx: PolicyContext,
    health: Partial<HealthOptions> = {},
    nowMs = 0,
  ) {
    this.ctx = ctx;
    for (const r of regions) {
      const view: RegionView = { id: r.id, lat: r.lat, lon: r.lon, status: 'up', srttMs: undefined };
      const state = new HealthState(health, 'up', nowMs);
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
    const t = e.health.observe(event, nowMs);
    if (e.view.status !== e.health.status || e.view.srttMs !== e.health.srttMs) this.cached = undefined;
    e.view.status = e.health.status;
    e.view.srttMs = e.health.srttMs;
    e.stats.status = e.health.status;
    e.stats.srttMs = e.health.srttMs;
    e.stats.lastChangeMs = e.health.lastChangeMs;
    e.stats.lastReason = e.health.lastReason;
    return t ? { ...t, region } : undefined;
  }

  /** A copy of every region's status, in configuration order. */
  snapshot(): RegionStatus[] {
    return this.views.map((v) => ({ ...this.entries.get(v.id)!.stats }));
  }
}
