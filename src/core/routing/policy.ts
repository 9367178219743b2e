/**
 * Routing policies of the edge: given every region's health and the client's whereabouts, the
 * order in which to try regions for one request, and why the first one was chosen. Pure and
 * deterministic (randomness is passed in), so the simulator can drive it.
 */
import { greatCircleKm, type LatLon } from '../geo.js';
import type { HealthStatus } from '../health.js';
import type { RegionId } from '../types.js';

export type RoutingPolicyName = 'latency' | 'geo' | 'weighted' | 'failover';

/** Why the region that served a request was chosen (the `reason` of `Meridian-Route`). */
export type RouteReason =
  | 'nearest'
  | 'lowest-latency'
  | 'weighted'
  | 'priority'
  | 'failover'
  | 'sticky'
  | 'replay'
  | 'retry';

export interface PolicyConfig {
  policy: RoutingPolicyName;
  /** weighted: region -> relative weight; empty means every region weighs the same. */
  weights: Readonly<Record<RegionId, number>>;
  /** failover: regions in priority order; regions not listed follow, by smoothed RTT. */
  priority: readonly RegionId[];
}

/** What the policy may know about one region. */
export interface RegionView {
  id: RegionId;
  lat: number;
  lon: number;
  status: HealthStatus;
  /** Smoothed RTT from the edge's probes; undefined before the first answer. */
  srttMs: number | undefined;
}

export interface RouteQuery {
  /** Where the client is (header, GeoIP); absent: the edge's own location stands in. */
  client?: LatLon | undefined;
  /** The region the client's reads are pinned to after a write (already checked for expiry). */
  stickyRegion?: RegionId | undefined;
  /** A uniform number in [0, 1) for the weighted draw. */
  random: number;
}

export interface RoutePlan {
  /** Regions to try, best first: [0] serves the request, [1] takes the retry. Never empty. */
  order: RegionId[];
  reason: RouteReason;
  /** True when no region was up and the edge routes to all of them rather than to none. */
  panic: boolean;
}

/** Everything fixed per edge: resolved once, not per request. */
export interface PolicyContext {
  config: PolicyConfig;
  /** Where the edge itself is: the stand-in for clients of unknown location. */
  edgeLocation: LatLon;
}

const byId = (a: RegionView, b: RegionView): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function bySrtt(a: RegionView, b: RegionView): number {
  const x = a.srttMs ?? Number.POSITIVE_INFINITY;
  const y = b.srttMs ?? Number.POSITIVE_INFINITY;
  return x !== y ? x - y : byId(a, b);
}

/** Every region ranked by the policy alone, health ignored; the weighted draw uses `random`. */
export function rankRegions(
  ctx: PolicyContext,
  regions: readonly RegionView[],
  client: LatLon | undefined,
  random: number,
): RegionView[] {
  const cfg = ctx.config;
  switch (cfg.policy) {
    case 'geo': {
      const from = client ?? ctx.edgeLocation;
      const km = new Map(regions.map((r) => [r.id, greatCircleKm(from, r)]));
      return [...regions].sort((a, b) => km.get(a.id)! - km.get(b.id)! || byId(a, b));
    }
    case 'latency':
      return [...regions].sort(bySrtt);
    case 'failover': {
      const listed = cfg.priority
        .map((id) => regions.find((r) => r.id === id))
        .filter((r): r is RegionView => r !== undefined);
      const rest = regions.filter((r) => !cfg.priority.includes(r.id)).sort(bySrtt);
      return [...listed, ...rest];
    }
    case 'weighted': {
      const weightOf = (r: RegionView): number =>
        Object.keys(cfg.weights).length === 0 ? 1 : (cfg.weights[r.id] ?? 0);
      const sorted = [...regions].sort((a, b) => weightOf(b) - weightOf(a) || byId(a, b));
      const total = sorted.reduce((s, r) => s + weightOf(r), 0);
      if (total <= 0) return sorted;
      let point = random * total;
      let pick = sorted[sorted.length - 1]!;
      for (const r of sorted) {
        point -= weightOf(r);
        if (point < 0) {
          pick = r;
          break;
        }
      }
      return [pick, ...sorted.filter((r) => r !== pick)];
    }
  }
}

const POLICY_REASON: Record<RoutingPolicyName, RouteReason> = {
  geo: 'nearest',
  latency: 'lowest-latency',
  weighted: 'weighted',
  failover: 'priority',
};

/**
 * The plan for one request: healthy regions in policy order (the sticky region first when it is
 * up). The reason is `failover` when the policy's first choice is down. With no region up, every
 * region is tried in policy order (panic routing, as Envoy does), since probes that fail everywhere
 * more often mean trouble at the edge than a world without regions.
 * @example
 * planRoute(ctx, views, { client: { lat: 48.8, lon: 2.3 }, random: Math.random() })
 * // -> { order: ['eu-west-1', 'us-east-1'], reason: 'nearest', panic: false }
 */
export function planRoute(ctx: PolicyContext, regions: readonly RegionView[], query: RouteQuery): RoutePlan {
  if (regions.length === 0) throw new Error('planRoute: no regions configured');
  const policy = ctx.config.policy;
  if (policy === 'weighted') {
    // Draw among the healthy regions only, so a dead region's weight moves to the living.
    const up = regions.filter((r) => r.status === 'up');
    const pool = up.length > 0 ? up : regions;
    const ranked = rankRegions(ctx, pool, query.client, query.random);
    return withSticky(
      { order: ranked.map((r) => r.id), reason: 'weighted', panic: up.length === 0 },
      regions,
      query,
    );
  }
  const ranked = rankRegions(ctx, regions, query.client, query.random);
  const up = ranked.filter((r) => r.status === 'up');
  if (up.length === 0) {
    return { order: ranked.map((r) => r.id), reason: POLICY_REASON[policy], panic: true };
  }
  const reason = up[0] === ranked[0] ? POLICY_REASON[policy] : 'failover';
  return withSticky({ order: up.map((r) => r.id), reason, panic: false }, regions, query);
}

/** Reads pinned to the region of the client's last write go there first, while it is up. */
function withSticky(plan: RoutePlan, regions: readonly RegionView[], query: RouteQuery): RoutePlan {
  const sticky = query.stickyRegion;
  if (sticky === undefined) return plan;
  const view = regions.find((r) => r.id === sticky);
  if (view?.status !== 'up') return plan;
  return { order: [sticky, ...plan.order.filter((id) => id !== sticky)], reason: 'sticky', panic: false };
}
