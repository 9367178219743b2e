/** Starting a saga under the caller's Idempotency-Key: the saga record and the stored answer commit together. */
import { type IdempotencyKeys, IdempotencyRaced } from '../idempotency.js';
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
  const d = await keys.begin(r.idempotencyKey, r.fp);
  if (d.kind === 'replay') return { status: d.status, body: d.body, replayed: true };
  try {
    const id = sagaIdFor(r.type, r.caller, r.idempotencyKey);
    const { saga } = await engine.start(r.type, r.input, {
      id,
      ...(r.mode ? { mode: r.mode } : {}),
      guard: (read) => d.claim.guard(read),
      extra: (fresh) => [d.claim.entry(202, { id: fresh.id, status: fresh.status })],
    });
    return { status: 202, body: { id, status: saga.status }, replayed: false };
  } catch (e) {
    if (e instanceof IdempotencyRaced) {
      const rep = keys.replayOf(e.record, r.fp);
      if (rep.kind === 'replay') return { status: rep.status, body: rep.body, replayed: true };
    }
    throw e;
  } finally {
    d.claim.release();
  }
}
