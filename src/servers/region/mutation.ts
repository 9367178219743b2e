/**
 * The one path every document mutation takes: pre-checks, the hook chain (idempotency keys plug in
 * here), the core write, and the answer with its version token.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WriteOptions } from '../../core/region.js';
import { encodeToken, mergeVersions } from '../../core/version.js';
import type { MutationAnswer, MutationContext, MutationOp, RegionNodeContext } from './context.js';
import { H } from './headers.js';

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
