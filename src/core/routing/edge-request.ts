/**
 * What the edge decides around one client request, without I/O: where it goes first (policy,
 * health, the sticky cookie), whether it may be retried, which version token it carries to the
 * region (the client's, else the version cookie's), whether a failed answer counts against the
 * region, and the cookies the client gets back. The edge server (src/servers/edge/server.ts) and the
 * simulator's virtual edges (src/sim/edge.ts) both call these, so the simulator's users are routed
 * by the code that routes real ones.
 */
import type { LatLon } from '../geo.js';
import type { RegionId } from '../types.js';
import { RequestAttempt } from './attempt.js';
import {
  decodeSticky,
  isIdempotent,
  isWrite,
  mergeTokens,
  readCookie,
  rywCookies,
  STICKY_COOKIE,
  VERSION_COOKIE,
  validToken,
} from './request.js';
import type { RoutingTable } from './table.js';

/**
 * The edge's defaults (the `edge` and `upstream` sections of the configuration when left out), as
 * core data so the simulator runs the edge as it ships. They repeat the defaults of
 * src/adapters/config.ts and the edge's DEFAULT_UPSTREAM; test/sim-edge.test.ts checks they agree.
 */
export const EDGE_DEFAULTS = {
  policy: 'latency',
  /** How long reads stick to the region of a client's last write. */
  stickyMs: 10_000,
  /** A request with no answer headers after this long is a failure (and may be retried). */
  headersTimeoutMs: 10_000,
  /** The node's default wait for a read's version token (`Meridian-Max-Wait-Ms` left out). */
  nodeMaxWaitMs: 1000,
  health: { intervalMs: 250, timeoutMs: 1000, fall: 2, rise: 2 },
} as const;

/** What the edge reads from a client request to route it. */
export interface ClientRequest {
  method: string;
  hasIdempotencyKey: boolean;
  /** The Cookie header. */
  cookie: string | undefined;
  /** Whether the client sent `Meridian-Min-Version` itself. */
  hasMinVersion: boolean;
  /** Where the client is (used by the geo policy only). */
  client?: LatLon | undefined;
}

export interface RoutedRequest {
  attempt: RequestAttempt;
  write: boolean;
  /** The version cookie's token, sent upstream as `Meridian-Min-Version` (reads without one). */
  cookieToken: string | undefined;
}

/**
 * Routes one request: reads go to the sticky region while the cookie is fresh and the region up,
 * then in the table's plan order; the attempt decides retries and replays from there.
 * @example
 * const r = routeRequest(table, { method: 'GET', hasIdempotencyKey: false, cookie, hasMinVersion: false }, now, Math.random(), known);
 * sendTo(r.attempt.first().region, r.cookieToken);
 */
export function routeRequest(
  table: RoutingTable,
  req: ClientRequest,
  nowMs: number,
  random: number,
  known: (r: RegionId) => boolean,
): RoutedRequest {
  const write = isWrite(req.method);
  const stickyRegion = write ? undefined : decodeSticky(readCookie(req.cookie, STICKY_COOKIE), nowMs, known);
  const plan = table.plan({
    client: table.ctx.config.policy === 'geo' ? req.client : undefined,
    stickyRegion,
    random,
  });
  const attempt = new RequestAttempt(plan, isIdempotent(req.method, req.hasIdempotencyKey), known);
  const cookieToken =
    !write && !req.hasMinVersion ? validToken(readCookie(req.cookie, VERSION_COOKIE)) : undefined;
  return { attempt, write, cookieToken };
}

/** The reason of a request the edge took back from a region it just ejected (retried elsewhere at once). */
export const EDGE_CANCELLED = 'EDGE_CANCELLED';

/**
 * Error codes a region answers with a 5xx that describe the request, not the region: a read whose
 * version did not arrive in the time it asked for, a sync write whose peers did not confirm in
 * time. Only the region's own failures may count against its health.
 */
export const REQUEST_CAUSED = new Set(['not_caught_up', 'sync_timeout']);

/** Whether a failed answer with this error code (undefined: none could be read) is the region's fault. */
export function isRegionsFault(errorCode: string | undefined): boolean {
  return errorCode === undefined || !REQUEST_CAUSED.has(errorCode);
}

/**
 * The Set-Cookie values for an answer: after a successful write, reads stick to the region that
 * took it for `stickyMs`, and the version cookie carries the merge of the client's token and the
 * region's `Meridian-Version`. Undefined when the answer sets none.
 */
export function answerCookies(
  write: boolean,
  status: number,
  cookie: string | undefined,
  versionHeader: string | undefined,
  region: RegionId,
  nowMs: number,
  stickyMs: number,
): string[] | undefined {
  if (!write || status < 200 || status >= 300) return undefined;
  const token = mergeTokens(validToken(readCookie(cookie, VERSION_COOKIE)), versionHeader);
  return rywCookies(region, token, nowMs, stickyMs);
}
