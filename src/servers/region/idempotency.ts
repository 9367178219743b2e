/**
 * Idempotency-Key on the region node: a mutation hook that replays stored answers and stores new
 * ones in the same transaction as the write, plus the periodic purge of expired keys.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { systemClock } from '../../adapters/system.js';
import {
  canonicalJson,
  IdempotencyKeys,
  requestFingerprint,
  validateIdempotencyKey,
  withIdempotency,
} from '../../core/idempotency.js';
import type { DocView } from '../../core/region.js';
import type { Json } from '../../core/types.js';
import { encodeToken, mergeVersions } from '../../core/version.js';
import type { MutationHook, RegionNodeContext, RegionRouteModule } from './context.js';
import { H } from './headers.js';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const REPLAYED_HEADER = 'idempotent-replayed';
/** How often expired keys are purged from the store. */
export const PURGE_INTERVAL_MS = 60_000;

const perNode = new WeakMap<RegionNodeContext, IdempotencyKeys>();

/** The node's idempotency keys (one table per node, shared by the document API and the saga routes). */
export function idempotencyKeys(node: RegionNodeContext): IdempotencyKeys {
  let keys = perNode.get(node);
  if (!keys) {
    keys = new IdempotencyKeys({
      region: node.region,
      kv: node.core,
      clock: systemClock,
      ttlMs: node.cfg.node.idempotencyTtlMs,
    });
    perNode.set(node, keys);
  }
  return keys;
}

/** The key a request carries, validated (400 if malformed); undefined when it carries none. */
export function requestKey(req: FastifyRequest): string | undefined {
  const raw = req.headers[IDEMPOTENCY_KEY_HEADER];
  if (raw === undefined) return undefined;
  return validateIdempotencyKey(Array.isArray(raw) ? (raw.length === 1 ? raw[0] : '') : raw);
}

/** Who is calling: a digest of its credentials, so keys of different callers never match. */
export function callerOf(req: FastifyRequest): string {
  const auth = req.headers.authorization;
  if (typeof auth !== 'string' || auth.length === 0) return 'anonymous';
  return createHash('sha256').update(auth).digest('base64url').slice(0, 22);
}

export function fingerprintOf(req: FastifyRequest): string {
  const body = req.body === undefined ? '' : canonicalJson(req.body as Json);
  return requestFingerprint({ method: req.method, path: req.url, body, caller: callerOf(req) });
}

/** The headers of a replayed answer. */
export function replayHeaders(body: Json): Record<string, string> {
  const h: Record<string, string> = { [REPLAYED_HEADER]: 'true' };
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && typeof body.version === 'string') {
    h[H.version] = body.version;
  }
  return h;
}

/**
 * The mutation hook: without the header, passes through; with it, replays a stored answer (200 +
 * Idempotent-Replayed), refuses a concurrent repeat (409) or a reuse for another request (422), or
 * runs the write with its answer committed beside it. The decisions are the core's withIdempotency,
 * the same code the simulator runs.
 */
export const idempotencyHook: MutationHook = async (ctx, next) => {
  const key = requestKey(ctx.request);
  if (key === undefined) return next();
  const sent = ctx.request.sentVersion ?? {};
  const a = await withIdempotency(idempotencyKeys(ctx.node), key, fingerprintOf(ctx.request), (claim) =>
    next({
      kvAfter: claim.kvAfter<DocView>(200, (view) => ({
        key: view.key,
        value: view.value,
        version: encodeToken(mergeVersions(view.version, sent)),
      })),
    }),
  );
  if (a.replayed) return { status: a.status, body: a.body, headers: replayHeaders(a.body) };
  return { status: a.status, body: a.body, headers: a.headers };
};

/** Purges expired keys every minute while the node runs. */
export const idempotencyModule: RegionRouteModule = {
  name: 'idempotency',
  register(app, node) {
    const keys = idempotencyKeys(node);
    const timer = setInterval(() => {
      node.core.purgeExpiredKv().then(
        (n) => {
          if (n > 0) node.log.info({ purged: n }, 'purged expired idempotency keys');
        },
        (e: unknown) => node.log.warn({ err: (e as Error).message }, 'idempotency purge failed'),
      );
    }, PURGE_INTERVAL_MS);
    timer.unref();
    app.addHook('onClose', async () => clearInterval(timer));
    app.get('/internal/idempotency/stats', async () => ({
      region: node.region,
      ttlMs: keys.ttlMs,
      ...keys.stats(),
    }));
  },
};
