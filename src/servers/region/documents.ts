/** The document API: GET/PUT/DELETE /v1/{collection}/{key} and POST .../{increment|add|remove}. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { requireClientWritable, requireOperation, validateKey } from '../../core/collection.js';
import { MeridianError } from '../../core/errors.js';
import type { CollectionSpec, Operation, RegionId } from '../../core/types.js';
import { encodeToken, isRegionId, mergeVersions } from '../../core/version.js';
import type { MutationKind, RegionNodeContext } from './context.js';
import { H, waitBudgetMs } from './headers.js';
import { runMutation } from './mutation.js';

const incrementBody = z.strictObject({
  by: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER),
});
const membersBody = z.strictObject({
  members: z.array(z.string().min(1).max(512)).min(1).max(1000),
});

type DocParams = { collection: string; key: string };

function schemaError(e: z.ZodError): MeridianError {
  const i = e.issues[0]!;
  const at = i.path.length > 0 ? `"${i.path.join('.')}"` : 'body';
  return new MeridianError('bad_request', `${at}: ${i.message}`);
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown, example: string): T {
  if (body === undefined) throw new MeridianError('bad_json', `send a JSON body like ${example}`);
  const res = schema.safeParse(body);
  if (!res.success) throw schemaError(res.error);
  return res.data;
}

/** The checks every request on a document makes first, in the order the contract ranks them. */
function prepare(node: RegionNodeContext, p: DocParams, op: Operation): CollectionSpec {
  const spec = node.core.collection(p.collection);
  validateKey(p.key);
  requireOperation(spec, op);
  requireClientWritable(spec, op);
  node.core.checkResidency(spec);
  return spec;
}

function homeRegion(node: RegionNodeContext, req: FastifyRequest): RegionId | undefined {
  const raw = req.headers[H.homeRegion];
  if (raw === undefined) return undefined;
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!isRegionId(v) || !node.cfg.regions.some((r) => r.id === v)) {
    throw new MeridianError('bad_request', `${H.homeRegion}: '${v}' is not a region of this cluster`);
  }
  return v;
}

export function registerDocumentRoutes(app: FastifyInstance, node: RegionNodeContext): void {
  const { core } = node;

  app.get<{ Params: DocParams }>('/v1/:collection/:key', async (req, reply) => {
    const p = req.params;
    prepare(node, p, 'get');
    const maxWaitMs = waitBudgetMs(req.headers[H.maxWaitMs], node.cfg.node.maxWaitMs);
    const view = await core.get(
      p.collection,
      p.key,
      req.minVersion ? { minVersion: req.minVersion, maxWaitMs } : {},
    );
    if (!view) throw new MeridianError('not_found', `no document '${p.key}' in '${p.collection}'`);
    const token = encodeToken(mergeVersions(view.version, req.sentVersion ?? {}));
    reply.header(H.version, token);
    return { key: view.key, value: view.value, version: token };
  });

  app.put<{ Params: DocParams }>('/v1/:collection/:key', async (req, reply) => {
    const p = req.params;
    prepare(node, p, 'put');
    const home = homeRegion(node, req);
    if (req.body === undefined) throw new MeridianError('bad_json', 'PUT needs a JSON body: the document');
    const value = req.body as Parameters<typeof core.put>[2];
    return runMutation(node, req, reply, {
      kind: 'put',
      collection: p.collection,
      key: p.key,
      body: value,
      apply: (o) => core.put(p.collection, p.key, value, { homeRegion: home, ...o }),
    });
  });

  app.delete<{ Params: DocParams }>('/v1/:collection/:key', async (req, reply) => {
    const p = req.params;
    prepare(node, p, 'delete');
    const home = homeRegion(node, req);
    return runMutation(node, req, reply, {
      kind: 'delete',
      collection: p.collection,
      key: p.key,
      body: undefined,
      apply: (o) => core.delete(p.collection, p.key, { homeRegion: home, ...o }),
    });
  });

  app.post<{ Params: DocParams & { op: string } }>('/v1/:collection/:key/:op', async (req, reply) => {
    const p = req.params;
    const kind = p.op as MutationKind;
    if (kind !== 'increment' && kind !== 'add' && kind !== 'remove') {
      core.collection(p.collection);
      throw new MeridianError('not_found', `unknown operation '${p.op}'; use increment, add or remove`);
    }
    prepare(node, p, kind);
    if (kind === 'increment') {
      const { by } = req.body === undefined ? { by: 1 } : parseBody(incrementBody, req.body, '{"by": 1}');
      return runMutation(node, req, reply, {
        kind,
        collection: p.collection,
        key: p.key,
        body: { by },
        apply: (o) => core.increment(p.collection, p.key, by, o),
      });
    }
    const { members } = parseBody(membersBody, req.body, '{"members": ["a", "b"]}');
    return runMutation(node, req, reply, {
      kind,
      collection: p.collection,
      key: p.key,
      body: { members },
      apply: (o) =>
        kind === 'add'
          ? core.addMembers(p.collection, p.key, members, o)
          : core.removeMembers(p.collection, p.key, members, o),
    });
  });

  // Any other method on a document names a real resource with the wrong verb.
  app.route<{ Params: DocParams }>({
    method: ['POST', 'PATCH'],
    url: '/v1/:collection/:key',
    handler: async (req) => {
      node.core.collection(req.params.collection);
      throw new MeridianError(
        'wrong_policy',
        `${req.method} is not an operation on a document: use GET, PUT, DELETE or POST .../increment|add|remove`,
      );
    },
  });
}
