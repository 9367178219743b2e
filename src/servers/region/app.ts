/**
 * The region node's HTTP app (fastify): hooks for the Meridian headers, errors, draining and
 * metrics; the document, internal, health and metrics routes; then any extra route modules.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import { MeridianError } from '../../core/errors.js';
import { nearestRegion } from '../../core/geo.js';
import { encodeToken } from '../../core/version.js';
import type { RegionNodeContext, RegionRouteModule } from './context.js';
import { registerDocumentRoutes } from './documents.js';
import { toMeridianError } from './errors.js';
import { H, parseVersionHeaders, replayHeader } from './headers.js';
import { type InternalStatusExtra, registerInternalRoutes } from './internal.js';
import { parseJsonBody } from './json-body.js';
import {
  checkContentEncoding,
  checkTransferEncoding,
  clientErrorHandler,
  frameworkError,
  originForm,
} from './raw-http.js';

export interface RegionAppOptions extends InternalStatusExtra {
  routeModules?: readonly RegionRouteModule[];
}

/** Keys are at most 512 bytes, i.e. up to 1536 characters percent-encoded; longer ones get a 400, not a 404. */
const MAX_PARAM_CHARS = 16 * 1024;

/**
 * @example
 *   const app = await buildRegionApp(node, { routeModules: [sagas] });
 *   await app.listen({ host: '127.0.0.1', port: 0 });
 */
export async function buildRegionApp(
  node: RegionNodeContext,
  options: RegionAppOptions = {},
): Promise<FastifyInstance> {
  const limits = node.cfg.node.limits;
  const app = Fastify({
    loggerInstance: node.log.child({ component: 'http' }) as FastifyBaseLogger,
    // One log line per request would cost more than the request at thousands per second.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: node.cfg.node.maxBodyBytes,
    routerOptions: { maxParamLength: MAX_PARAM_CHARS },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 65_000,
    http: {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      // Node checks the two timeouts on this interval (default 30 s, longer than a head may take).
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    // fastify's default (0) would switch off Node's own limit on the time a request may take.
    requestTimeout: limits.requestTimeoutMs,
    rewriteUrl: (req) => originForm(req.url ?? '/'),
    clientErrorHandler: clientErrorHandler(node.region, limits.maxHeaderBytes),
    frameworkErrors: (error, _req, reply) => {
      const e = frameworkError(error.code);
      // fastify types this reply with the route's generics; none apply before routing.
      const r = reply as unknown as FastifyReply;
      void r.code(e.status).header(H.region, node.region).send(e.toBody());
    },
  });
  // Only JSON bodies: fastify's default text/plain parser would let a string through as a document.
  app.removeContentTypeParser('text/plain');
  // Ours instead of fastify's: the node's limits apply before any route, an empty body is no body,
  // and a `__proto__` member is data, not a reason to refuse the document.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string, limits));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.decorateRequest('sentVersion', undefined);
  // While draining, requests are pointed at the nearest other region.
  const here = node.cfg.regions.find((r) => r.id === node.region)!;
  const drainReplay = nearestRegion(
    here,
    node.cfg.regions.filter((r) => r.id !== node.region),
  )?.id;
  app.decorateRequest('minVersion', undefined);

  app.addHook('onRequest', async (req, reply) => {
    // The body is left unread: the connection cannot carry another request after it.
    try {
      checkTransferEncoding(req.headers['transfer-encoding']);
      checkContentEncoding(req.headers['content-encoding']);
    } catch (e) {
      reply.header('connection', 'close');
      throw e;
    }
    if (node.isDraining() && req.url !== '/healthz' && req.url !== '/metrics') {
      reply.header('connection', 'close');
      throw new MeridianError(
        'unavailable',
        `${node.region} is draining; retry in another region`,
        drainReplay ? { replayRegion: drainReplay } : {},
      );
    }
    const { sent, min } = parseVersionHeaders(req.headers, node.cfg.regions);
    req.sentVersion = sent;
    req.minVersion = min;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header(H.region, node.region);
    // Keep-alive connections would otherwise outlive the drain by the keep-alive timeout.
    if (node.isDraining()) reply.header('connection', 'close');
    if (!reply.hasHeader(H.version))
      reply.header(H.version, encodeToken(node.core.answerVersion(req.sentVersion)));
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    const labels = {
      method: req.method,
      route: req.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    node.metrics.httpRequests.inc(labels);
    node.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  app.setErrorHandler(async (error, req, reply) => {
    const e = toMeridianError(error);
    if (e.status >= 500 && e.code === 'internal') {
      node.log.error({ err: error, url: req.url, method: req.method }, 'request failed');
    }
    if (typeof e.details.replayRegion === 'string')
      reply.header(H.replay, replayHeader(e.details.replayRegion));
    return reply.code(e.status).send(e.toBody());
  });

  app.setNotFoundHandler(async (req, reply) => {
    const e = new MeridianError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`);
    return reply.code(404).send(e.toBody());
  });

  app.get('/healthz', async (_req, reply) => {
    const draining = node.isDraining();
    return reply
      .code(draining ? 503 : 200)
      .send({ region: node.region, status: draining ? 'draining' : 'ok' });
  });

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await node.metrics.text();
    return reply.type(contentType).send(body);
  });

  registerInternalRoutes(app, node, options);
  registerDocumentRoutes(app, node);
  for (const m of options.routeModules ?? []) await m.register(app, node);
  return app;
}
