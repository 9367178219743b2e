/**
 * The simulator's edges: one virtual edge process per client region, deciding every request with
 * the edge's own code (src/core/routing: the routing table fed by probes over the simulated WAN and
 * by each request's outcome, the policy's plan, the sticky and version cookies, one replay of a
 * 421/503 naming a region, one retry of an idempotent request elsewhere) and the edge's defaults.
 * What the simulator adds is only the I/O: moving requests and answers between the edge and the
 * regions over the simulated network (sim/simulator.ts).
 */
import {
  answerCookies,
  EDGE_CANCELLED,
  EDGE_DEFAULTS,
  isRegionsFault,
  type NextStep,
  type RoutedRequest,
  type RoutingTable,
  routeRequest,
  type UpstreamOutcome,
} from '../core/routing/index.js';
import type { RegionId } from '../core/types.js';
import type { Prng } from './random.js';
import type { VirtualTime } from './time.js';

/** What a simulated user keeps between requests: its cookies, as a browser does. */
export class CookieJar {
  private readonly cookies = new Map<string, string>();
  private header: string | undefined;
  private stale = false;

  /** The Cookie header to send (undefined: none), built when it changed. */
  get(): string | undefined {
    if (this.stale) {
      this.stale = false;
      let h = '';
      for (const [k, v] of this.cookies) h += h === '' ? `${k}=${v}` : `; ${k}=${v}`;
      this.header = h === '' ? undefined : h;
    }
    return this.header;
  }

  /** Takes Set-Cookie values (only `name=value` matters to the edge; the edge checks expiry itself). */
  take(setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const end = line.indexOf(';');
      const first = end < 0 ? line : line.slice(0, end);
      const eq = first.indexOf('=');
      if (eq > 0) this.cookies.set(first.slice(0, eq).trim(), first.slice(eq + 1).trim());
    }
    this.stale = true;
  }
}

/** The request a simulated user sends: what the lab's traffic sends (method, key, token, cookies). */
export interface SimRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  hasIdempotencyKey: boolean;
  cookies: CookieJar;
  /** Whether the user sends `Meridian-Min-Version` itself. */
  hasMinVersion: boolean;
}

/**
 * @example
 * const edge = new SimEdge('eu-west-1', health.table('eu-west-1'), time, rng.fork('edge-eu-west-1'));
 * const r = edge.route({ method: 'GET', hasIdempotencyKey: false, cookies, hasMinVersion: false });
 * let step = r.attempt.first();
 * step = edge.next(r, step.region, { kind: 'answer', status: 421, replayHeader: 'region=us-east-1' }, 'misdirected');
 */
export class SimEdge {
  private readonly known = (r: RegionId): boolean => this.table.has(r);
  private readonly isUp = (r: RegionId): boolean => this.table.isUp(r);

  constructor(
    readonly id: RegionId,
    readonly table: RoutingTable,
    private readonly time: VirtualTime,
    private readonly rng: Prng,
  ) {}

  route(req: SimRequest): RoutedRequest {
    return routeRequest(
      this.table,
      {
        method: req.method,
        hasIdempotencyKey: req.hasIdempotencyKey,
        cookie: req.cookies.get(),
        hasMinVersion: req.hasMinVersion,
      },
      this.time.nowMs,
      this.rng.next(),
      this.known,
    );
  }

  /** Counts a request leaving for `region`. */
  dispatched(region: RegionId): void {
    this.table.dispatched(region);
  }

  /**
   * What the edge does after `region`'s outcome: feeds it to the table as passive health evidence
   * (a 5xx whose error code blames the request does not count), then asks the attempt for the next
   * step. `errorCode` is the code of the answer's JSON error body, if any.
   */
  next(
    r: RoutedRequest,
    region: RegionId,
    outcome: UpstreamOutcome,
    errorCode: string | undefined,
  ): NextStep {
    const verdict = r.attempt.verdict(outcome);
    const now = this.time.nowMs;
    const regionsFault =
      outcome.kind === 'error' ? outcome.reason !== EDGE_CANCELLED : isRegionsFault(errorCode);
    if (verdict === 'failed' && regionsFault) {
      const reason = outcome.kind === 'error' ? outcome.reason : `answered ${outcome.status}`;
      this.table.observe(region, { kind: 'request-failed', reason }, now);
    } else if (verdict === 'ok') {
      this.table.observe(region, { kind: 'request-ok' }, now);
    }
    return r.attempt.next(outcome, this.isUp);
  }

  /** The cookies the user gets with the answer the edge delivers. */
  deliver(r: RoutedRequest, status: number, versionToken: string | undefined, cookies: CookieJar): void {
    const set = answerCookies(
      r.write,
      status,
      cookies.get(),
      versionToken,
      r.attempt.region,
      this.time.nowMs,
      EDGE_DEFAULTS.stickyMs,
    );
    if (set) cookies.take(set);
  }
}
