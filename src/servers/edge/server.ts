/**
 * The edge: a reverse proxy for the /v1 surface that picks a region per request (policy, health,
 * stickiness), retries idempotent failures once, replays 421/503 redirections once, and gives
 * browsers read-your-writes through two cookies. Decisions live in src/core/routing; this file is
 * the I/O around them.
 */
import type { AddressInfo } from 'node:net';
import { type Logger, pino } from 'pino';
import { type MeridianConfig, regionConfig } from '../../adapters/config.js';
import { type GeoIp, parseClientLocation } from '../../adapters/geoip.js';
import { systemClock, systemRandom } from '../../adapters/system.js';
import { isMeridianError, MeridianError } from '../../core/errors.js';
import type { LatLon } from '../../core/geo.js';
import type { HealthEvent } from '../../core/health.js';
import type { Clock, Random } from '../../core/ports.js';
import {
  answerCookies,
  EDGE_CANCELLED,
  formatRoute,
  isRegionsFault,
  type NextStep,
  type RegionStatus,
  type RegionTransition,
  type RequestAttempt,
  type RouteReason,
  RoutingTable,
  routeRequest,
  type UpstreamOutcome,
} from '../../core/routing/index.js';
import type { RegionId } from '../../core/types.js';
import {
  type H1Pool,
  type PendingRequest,
  type UpstreamAnswer,
  UpstreamError,
  type UpstreamHandler,
} from './h1pool.js';
import { createHttp1Server, type Http1Request, type Http1Response } from './http1.js';
import { edgeMetrics } from './metrics.js';
import { startProber } from './prober.js';
import { closeUpstreams, DEFAULT_UPSTREAM, openUpstreams, type UpstreamOptions } from './upstreams.js';

export interface EdgeOptions {
  config: MeridianConfig;
  /** The region whose `edge` entry this process serves. */
  edgeId: RegionId;
  /** Default: the region's `edge.listen`. Tests pass port 0. */
  listen?: { host: string; port: number };
  /** Client IP -> location for the geo policy; without it, clients without the header count as local. */
  geoIp?: GeoIp;
  upstream?: Partial<UpstreamOptions>;
  logger?: Logger;
  clock?: Clock;
  random?: Random;
}

/** What tests, the bench and the lab can watch: each request leaving for a region, each health change. */
export type EdgeEvent =
  | { kind: 'dispatch'; region: RegionId; method: string; path: string; reason: RouteReason; atMs: number }
  | { kind: 'outcome'; region: RegionId; outcome: UpstreamOutcome; atMs: number }
  | { kind: 'transition'; transition: RegionTransition };

export interface EdgeStatus {
  edge: RegionId;
  policy: MeridianConfig['edge']['policy'];
  regions: (RegionStatus & { url: string })[];
}

export interface Edge {
  id: RegionId;
  /** http://host:port the edge listens on. */
  url: string;
  table: RoutingTable;
  status(): EdgeStatus;
  /** Subscribes to edge events; returns the unsubscribe function. */
  on(listener: (e: EdgeEvent) => void): () => void;
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself.
const HOP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
  'expect',
]);

type Headers = Record<string, string | string[]>;

/**
 * Whether a failed outcome is evidence against the region: connection refused or reset, a
 * timeout past the request's own budget, a 5xx of its own. Not: a request the edge cancelled
 * itself (the ejection that cancelled it was the evidence), or a 5xx whose error code says the
 * request asked for what could not be had in time.
 */
function upstreamsFault(err: Error | undefined, up: UpstreamAnswer | undefined): boolean {
  if (err) return (err as Error & { code?: string }).code !== EDGE_CANCELLED;
  if (!up || up.body.length === 0 || up.body.length > 64 * 1024) return true;
  try {
    const code = (JSON.parse(up.body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return isRegionsFault(typeof code === 'string' ? code : undefined);
  } catch {
    return true;
  }
}

const PROXY_METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']);

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function clientIp(req: Http1Request): string {
  const ip = req.remoteAddress;
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/**
 * Starts an edge: opens pools to every region, runs the first probe round (bounded by the probe
 * timeout) so the first request is already routed on health, then listens.
 * @example
 * const edge = await startEdge({ config: loadConfig('meridian.yaml'), edgeId: 'eu-west-1', geoIp });
 * // curl -i http://127.0.2.1:8080/v1/settings/theme  ->  Meridian-Route: policy=latency; region=eu-west-1; reason=lowest-latency
 */
export async function startEdge(options: EdgeOptions): Promise<Edge> {
  const cfg = options.config;
  const edgeId = options.edgeId;
  const self = regionConfig(cfg, edgeId);
  const listen = options.listen ?? self.edge?.listen;
  if (!listen) {
    throw new MeridianError('bad_request', `region '${edgeId}' has no edge entry in the configuration`);
  }
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const log = options.logger ?? pino({ level: 'silent' });
  const edgeCfg = cfg.edge;
  const policy = edgeCfg.policy;
  const table = new RoutingTable(
    cfg.regions.map((r) => ({ id: r.id, lat: r.lat, lon: r.lon })),
    { config: edgeCfg, edgeLocation: { lat: self.lat, lon: self.lon } },
    edgeCfg.health,
    clock.nowMs(),
  );
  const known = (r: RegionId): boolean => table.has(r);
  const isUp = (r: RegionId): boolean => table.isUp(r);
  const upstreamOptions = { ...DEFAULT_UPSTREAM, ...options.upstream } satisfies UpstreamOptions;
  const upstreams = openUpstreams(cfg, edgeId, upstreamOptions);
  const metrics = edgeMetrics(edgeId, table);
  const listeners = new Set<(e: EdgeEvent) => void>();
  const emit = (e: EdgeEvent): void => {
    for (const l of listeners) l(e);
  };

  // Idempotent requests in flight, per region: when a region is ejected they are cancelled and
  // retried elsewhere at once, instead of waiting out a timeout on a region known to be gone.
  const inFlight = new Map<RegionId, Set<{ cancel(reason: Error): void }>>(
    cfg.regions.map((r) => [r.id, new Set()]),
  );

  const observe = (region: RegionId, ev: HealthEvent): void => {
    const t = table.observe(region, ev, clock.nowMs());
    if (t) {
      metrics.transitions.inc({ region, to: t.to });
      log.warn({ region, from: t.from, to: t.to, reason: t.reason }, `region ${region} is ${t.to}`);
      emit({ kind: 'transition', transition: t });
      // After the event: a cancelled request retries synchronously, and its new dispatch must
      // come after the ejection that caused it.
      if (t.to === 'down') {
        const cancelled = new UpstreamError(EDGE_CANCELLED, `region ${region} was ejected (${t.reason})`);
        for (const c of [...(inFlight.get(region) ?? [])]) c.cancel(cancelled);
      }
    }
  };

  // One string per (region, reason), built on first use: the header is the same for every request.
  const routeHeaders = new Map<RegionId, Partial<Record<RouteReason, string>>>();
  const routeHeader = (region: RegionId, reason: RouteReason): string => {
    let byReason = routeHeaders.get(region);
    if (!byReason) {
      byReason = {};
      routeHeaders.set(region, byReason);
    }
    let h = byReason[reason];
    if (h === undefined) {
      h = formatRoute(policy, region, reason);
      byReason[reason] = h;
    }
    return h;
  };

  const answered = metrics.answered;

  const locate = (req: Http1Request): LatLon | undefined =>
    parseClientLocation(req.headers['meridian-client-location']) ?? options.geoIp?.locate(clientIp(req));

  const status = (): EdgeStatus => ({
    edge: edgeId,
    policy,
    regions: table.snapshot().map((s) => ({ ...s, url: upstreams.get(s.region)!.url })),
  });

  function sendJson(res: Http1Response, code: number, body: unknown, extra: Headers = {}): void {
    const text = JSON.stringify(body);
    res.send(
      code,
      { 'content-type': 'application/json; charset=utf-8', 'meridian-edge': edgeId, ...extra },
      text,
    );
  }

  function sendError(res: Http1Response, e: unknown, extra: Headers = {}): void {
    const err = isMeridianError(e) ? e : new MeridianError('internal', (e as Error).message ?? String(e));
    if (err.code === 'internal') log.error({ err: e }, 'edge error');
    sendJson(res, err.status, err.toBody(), extra);
  }

  async function local(req: Http1Request, res: Http1Response): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new MeridianError('not_found', `no route ${req.method} ${path} on the edge`));
      return;
    }
    if (path === '/healthz') {
      const anyUp = table.regionIds.some(isUp);
      sendJson(res, anyUp ? 200 : 503, { edge: edgeId, status: anyUp ? 'ok' : 'no-healthy-region' });
    } else if (path === '/edge/status') {
      sendJson(res, 200, status());
    } else if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.send(200, { 'content-type': metrics.registry.contentType, 'meridian-edge': edgeId }, text);
    } else {
      sendError(res, new MeridianError('not_found', `no route ${path} on the edge; the API is under /v1`));
    }
  }

  /**
   * The header lines sent upstream, built in one pass over the client's headers: http1.ts has
   * already checked every name and value, and the two the edge adds (the client's IP, a version
   * token) are well-formed by construction.
   */
  function upstreamHeaderLines(req: Http1Request, cookieToken: string | undefined): string {
    addedToken = false;
    let out = '';
    const h = req.headers;
    for (const k in h) {
      if (HOP_REQUEST.has(k) || k === 'x-forwarded-for') continue;
      out += `${k}: ${h[k]}\r\n`;
    }
    const ip = clientIp(req);
    const prior = h['x-forwarded-for'];
    out += `x-forwarded-for: ${prior ? `${prior}, ${ip}` : ip}\r\n`;
    if (cookieToken) {
      out += `meridian-min-version: ${cookieToken}\r\n`;
      addedToken = true;
    }
    return out;
  }

  // Set by upstreamHeaderLines when it added the cookie's token, so the budget below needs no
  // second parse of the cookie (both run in the same synchronous turn).
  let addedToken = false;

  /**
   * How long the region may take to answer this request's head. A read carrying a version token
   * may wait for it at the region, as long as `Meridian-Max-Wait-Ms` asks (the node's default
   * without it): that wait is added to the edge's own budget, so a timeout is only ever the
   * region's fault. An ask beyond `edge.maxWaitMs` is refused before it is sent.
   */
  function upstreamBudgetMs(req: Http1Request): number {
    const ask = req.headers['meridian-max-wait-ms'];
    const base = upstreamOptions.headersTimeoutMs;
    if (ask !== undefined) {
      const ms = /^\d{1,9}$/.test(ask) ? Number(ask) : Number.NaN;
      if (!(ms <= edgeCfg.maxWaitMs)) {
        throw new MeridianError(
          'bad_request',
          `meridian-max-wait-ms must be an integer from 0 to ${edgeCfg.maxWaitMs} (this edge's longest wait)`,
        );
      }
      return base + ms;
    }
    if (addedToken || req.headers['meridian-min-version'] !== undefined) return base + cfg.node.maxWaitMs;
    return base;
  }

  const edgeLine = `meridian-edge: ${edgeId}\r\n`;

  function deliver(
    res: Http1Response,
    up: UpstreamAnswer,
    attempt: RequestAttempt,
    write: boolean,
    cookie: string | undefined,
  ): void {
    const headers = up.headers;
    const code = up.status;
    const route = routeHeader(attempt.region, attempt.reason);
    const cookies = answerCookies(
      write,
      code,
      cookie,
      firstHeader(headers['meridian-version']),
      attempt.region,
      clock.nowMs(),
      edgeCfg.stickyMs,
    );
    if (headers['meridian-edge'] === undefined && headers['meridian-route'] === undefined) {
      // The common case: the region's header lines pass through as they are, ours appended.
      let lines = `${up.headerLines}${edgeLine}meridian-route: ${route}\r\n`;
      if (cookies) for (const c of cookies) lines += `set-cookie: ${c}\r\n`;
      res.sendRaw(code, lines, up.body, up.contentLength);
    } else {
      // A region naming its own edge or route: ours replace them. Hop-by-hop headers are
      // dropped by the writer (http1.ts); deleting them here would make the object a dictionary.
      headers['meridian-edge'] = edgeId;
      headers['meridian-route'] = route;
      if (cookies) {
        const prior = headers['set-cookie'];
        headers['set-cookie'] =
          prior === undefined ? cookies : [...([] as string[]).concat(prior), ...cookies];
      }
      if (up.contentLength !== undefined) headers['content-length'] = String(up.contentLength);
      res.send(code, headers, up.body);
    }
    answered(attempt.reason, code);
  }

  /**
   * One proxied request: an object that is its own upstream handler and its own cancel handle,
   * so the hot path allocates no closure or promise per request.
   */
  class Forwarding implements UpstreamHandler {
    private pending: PendingRequest | undefined;
    private pool: H1Pool | undefined;
    private region: RegionId = '';

    constructor(
      private readonly req: Http1Request,
      private readonly res: Http1Response,
      private readonly attempt: RequestAttempt,
      private readonly headerLines: string,
      private readonly write: boolean,
      private readonly cookie: string | undefined,
      private readonly budgetMs: number,
    ) {}

    /** Sends the request where `step` says, or answers when there is nowhere left to send it. */
    go(step: NextStep): void {
      const attempt = this.attempt;
      if (step.kind === 'send') {
        const region = step.region;
        const req = this.req;
        this.region = region;
        table.dispatched(region);
        if (listeners.size > 0)
          emit({
            kind: 'dispatch',
            region,
            method: req.method,
            path: req.url,
            reason: step.reason,
            atMs: clock.nowMs(),
          });
        if (attempt.idempotent) inFlight.get(region)!.add(this);
        const pool = upstreams.get(region)!.pool;
        this.pool = pool;
        const p = pool.sendRaw(
          req.method,
          req.url,
          this.headerLines,
          req.body,
          req.headers['idempotency-key'] !== undefined,
          this,
          this.budgetMs,
        );
        // The pool may already have answered (a closed pool fails at once).
        if (p && !p.finished) this.pending = p;
        return;
      }
      const message = step.kind === 'fail' ? step.reason : 'no answer';
      answered(attempt.reason, 503);
      sendError(this.res, new MeridianError('unavailable', message, { region: attempt.region }), {
        'meridian-route': routeHeader(attempt.region, attempt.reason),
      });
    }

    /** Called when the region is ejected with this request in flight there. */
    cancel(reason: Error): void {
      const p = this.pending;
      if (p) this.pool!.abort(p, reason);
    }

    onUpstream(err: Error | undefined, up: UpstreamAnswer | undefined): void {
      this.pending = undefined;
      const region = this.region;
      const attempt = this.attempt;
      if (attempt.idempotent) inFlight.get(region)!.delete(this);
      try {
        const outcome: UpstreamOutcome = up
          ? { kind: 'answer', status: up.status, replayHeader: firstHeader(up.headers['meridian-replay']) }
          : { kind: 'error', reason: (err as Error & { code?: string }).code ?? err!.message };
        if (listeners.size > 0) emit({ kind: 'outcome', region, outcome, atMs: clock.nowMs() });
        const verdict = attempt.verdict(outcome);
        if (verdict === 'failed' && upstreamsFault(err, up)) {
          observe(region, {
            kind: 'request-failed',
            reason: outcome.kind === 'error' ? outcome.reason : `answered ${outcome.status}`,
          });
        } else if (verdict === 'ok') {
          observe(region, { kind: 'request-ok' });
        }
        const step = attempt.next(outcome, isUp);
        if (step.kind === 'deliver' && up) deliver(this.res, up, attempt, this.write, this.cookie);
        else this.go(step);
      } catch (e) {
        if (!this.res.sent) sendError(this.res, e);
      }
    }
  }

  function proxy(req: Http1Request, res: Http1Response): void {
    const method = req.method;
    if (!PROXY_METHODS.has(method)) {
      throw new MeridianError('bad_request', `method ${method} is not part of the /v1 surface`);
    }
    const cookie = req.headers.cookie;
    const { attempt, write, cookieToken } = routeRequest(
      table,
      {
        method,
        hasIdempotencyKey: req.headers['idempotency-key'] !== undefined,
        cookie,
        hasMinVersion: req.headers['meridian-min-version'] !== undefined,
        client: policy === 'geo' ? locate(req) : undefined,
      },
      clock.nowMs(),
      random.next(),
      known,
    );
    const lines = upstreamHeaderLines(req, cookieToken);
    new Forwarding(req, res, attempt, lines, write, cookie, upstreamBudgetMs(req)).go(attempt.first());
  }

  const server = createHttp1Server(
    { ...edgeCfg.client, maxBodyBytes: edgeCfg.maxBodyBytes },
    (req, res) => {
      if (req.url.startsWith('/v1/')) {
        try {
          proxy(req, res);
        } catch (e) {
          if (!res.sent) sendError(res, e);
        }
        return;
      }
      local(req, res).catch((e: unknown) => {
        if (!res.sent) sendError(res, e);
      });
    },
    () => ({ 'meridian-edge': edgeId }),
    (why) => metrics.refused(why),
  );

  const prober = startProber(
    upstreams,
    { ...edgeCfg.health, timeoutFor: (r) => table.probeTimeoutMs(r) },
    (region, ev) => observe(region, ev),
  );
  // Route the first request on real health, but never wait longer than one probe timeout for it.
  await Promise.race([
    prober.firstRound,
    new Promise((r) => setTimeout(r, edgeCfg.health.timeoutMs + 50).unref()),
  ]);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ edge: edgeId, url, policy }, 'edge listening');

  return {
    id: edgeId,
    url,
    table,
    status,
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      prober.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await closeUpstreams(upstreams);
    },
  };
}
