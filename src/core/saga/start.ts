/** Starting a saga under the caller's Idempotency-Key: the saga record and the stored answer commit together. */
import { type IdempotencyKeys, withIdempotency } from '../idempotency.js';
import type { Json } from '../types.js';
import { type SagaEngine, sagaIdFor } from './engine.js';
import type { SagaMode } from './types.js';

export interface SagaStartRequest {
  type: string;
  input: Json;
  idempotencyKey: string;
  /** The request's fingerprint (method, path, body, caller). */
  fp: string;
  caller: string;
  mode?: SagaMode;
}

/**
 * Answers 202 {id, status} for a new saga, replays the stored answer for a repeat, and names the
 * same saga id for a repeat that lands in another region (the id derives from the key and caller).
 *
 * @example
 * const a = await startSaga(keys, engine, { type: 'transfer', input, idempotencyKey, fp, caller });
 * reply.code(a.status).send(a.body);
 */
export async function startSaga(
  keys: IdempotencyKeys,
  engine: SagaEngine,
  r: SagaStartRequest,
): Promise<{ status: number; body: Json; replayed: boolean }> {
  engine.definition(r.type);
  return withIdempotency(keys, r.idempotencyKey, r.fp, async (claim) => {
    const id = sagaIdFor(r.type, r.caller, r.idempotencyKey);
    const { saga } = await engine.start(r.type, r.input, {
      id,
      ...(r.mode ? { mode: r.mode } : {}),
      guard: (read) => claim.guard(read),
      extra: (fresh) => [claim.entry(202, { id: fresh.id, status: fresh.status })],
    });
    return { status: 202, body: { id, status: saga.status } };
  });
}
