/**
 * The `transfer` saga of the lab: debit `from` in its home region, credit `to` in its home region,
 * refund `from` if the credit fails. Each step's key is derived from the saga, so a retried or
 * duplicated step applies once; an unknown outcome is settled by fencing its key first.
 */
import { MeridianError } from '../errors.js';
import type { Json } from '../types.js';
import { ACCOUNTS_COLLECTION, type AccountOps } from './accounts.js';
import type { SagaDefinition, SagaMode, StepContext } from './types.js';

export interface TransferInput {
  from: string;
  to: string;
  amount: number;
}

export function parseTransfer(input: Json): TransferInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new MeridianError('bad_request', 'transfer input must be {"from", "to", "amount"}');
  const { from, to, amount } = input;
  if (typeof from !== 'string' || from.length === 0 || typeof to !== 'string' || to.length === 0)
    throw new MeridianError('bad_request', '"from" and "to" must be account keys');
  if (from === to) throw new MeridianError('bad_request', '"from" and "to" must differ');
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0)
    throw new MeridianError('bad_request', '"amount" must be a positive integer');
  return { from, to, amount };
}

/**
 * @example
 * engine.register(transferSaga(new Accounts(core, keys)));
 * engine.register(transferSaga((mode) => (mode === 'choreography' ? localOps : httpOps)));
 */
export function transferSaga(
  accountOps: AccountOps | ((mode: SagaMode) => AccountOps),
  mode: SagaMode = 'orchestration',
  /** The accounts' collection: the saga's records share its residency. */
  collection: string = ACCOUNTS_COLLECTION,
): SagaDefinition {
  const t = (ctx: StepContext) => parseTransfer(ctx.input);
  // A coordinator may reach accounts over the network; a choreographed step runs where it is.
  const forMode = (ctx: StepContext) =>
    typeof accountOps === 'function' ? accountOps(ctx.mode) : accountOps;
  return {
    type: 'transfer',
    mode,
    collection,
    validate: (input) => void parseTransfer(input),
    steps: [
      {
        name: 'debit',
        action: (ctx) => forMode(ctx).apply(t(ctx).from, -t(ctx).amount, ctx.idempotencyKey),
        // The refund: its own derived key (`…:debit:compensate`), retried until it succeeds.
        compensate: (ctx) => forMode(ctx).apply(t(ctx).from, t(ctx).amount, ctx.idempotencyKey),
        settle: async (ctx) => {
          const r = await forMode(ctx).fence(t(ctx).from, ctx.idempotencyKey);
          return settled(r);
        },
      },
      {
        name: 'credit',
        action: (ctx) => forMode(ctx).apply(t(ctx).to, t(ctx).amount, ctx.idempotencyKey),
        compensate: (ctx) => forMode(ctx).apply(t(ctx).to, -t(ctx).amount, ctx.idempotencyKey),
        settle: async (ctx) => settled(await forMode(ctx).fence(t(ctx).to, ctx.idempotencyKey)),
      },
    ],
  };
}

/** A fence that found a stored refusal means the step failed; a stored success means it was applied. */
function settled(
  r: { state: 'applied'; status: number; body: Json } | { state: 'fenced' },
): { applied: true; result: Json } | { applied: false } {
  return r.state === 'applied' && r.status >= 200 && r.status < 300
    ? { applied: true, result: r.body }
    : { applied: false };
}
