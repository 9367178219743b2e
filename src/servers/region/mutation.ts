/**
 * The one path every document mutation takes: pre-checks, the hook chain (idempotency keys plug in
 * here), the core write, and the answer with its version token.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WriteOptions } from '../../core/region.js';
import { encodeToken, mergeVersions } from '../../core/version.js';
import type { MutationAnswer, MutationContext, MutationOp, RegionNodeContext } from './context.js';
import { H, waitBudgetMs } from './headers.js';

/**
 * Runs `op` through the node's mutation hooks and the core, then sends the answer.
 * @example
 *   return runMutation(node, req, reply, { kind: 'put', collection, key, body, apply: (o) => core.put(collection, key, body, o) });
 */
export async function runMutation(
  node: RegionNodeContext,
  request: FastifyRequest,
  reply: FastifyReply,
  op: MutationOp,
): Promise<FastifyReply> {
  // A write carrying Meridian-Min-Version is ordered after what its client has seen: for a pinned
  // key that means the home set by an earlier write is known here before this one is judged.
  if (request.minVersion) {
    const maxWaitMs = waitBudgetMs(request.headers[H.maxWaitMs], node.cfg.node.maxWaitMs);
    await node.core.waitForVersion(request.minVersion, maxWaitMs);
  }
  const ctx: MutationContext = { request, reply, op, node };
  const base = async (options: WriteOptions = {}): Promise<MutationAnswer> => {
    const view = await op.apply(options);
    const token = encodeToken(mergeVersions(view.version, request.sentVersion ?? {}));
    return {
      status: 200,
      body: { key: view.key, value: view.value, version: token },
      headers: { [H.version]: token },
    };
  };
  const chain = node.mutationHooks.reduceRight<(o?: WriteOptions) => Promise<MutationAnswer>>(
    (next, hook) => (o) => hook(ctx, (inner) => next({ ...o, ...inner })),
    base,
  );
  const answer = await chain();
  reply.code(answer.status);
  for (const [k, v] of Object.entries(answer.headers)) reply.header(k, v);
  return reply.send(answer.body);
}
