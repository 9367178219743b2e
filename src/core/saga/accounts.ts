/**
 * The lab's demo domain: accounts pinned to a home region, whose balance changes only in that
 * region, under an idempotency key, and never below zero. The saga steps of a transfer call these.
 */
import { errorStatus, MeridianError } from '../errors.js';
import {
  canonicalJson,
  type FenceResult,
  type IdempotencyKeys,
  requestFingerprint,
  withIdempotency,
} from '../idempotency.js';
import type { RegionCore } from '../region.js';
import type { Json } from '../types.js';
import { StepFailure } from './retry.js';

export const ACCOUNTS_COLLECTION = 'accounts';
/** Accounts opened through Accounts.open, so a summary can add up the money without a scan. */
export const ACCOUNTS_INDEX_NS = 'accounts-index';

/** What a transfer's steps need, wherever the account lives: local calls or HTTP to its home. */
export interface AccountOps {
  /** Adds `delta` to the balance under `idempotencyKey`; throws on refusal (409, 404) or 421 elsewhere. */
  apply(account: string, delta: number, idempotencyKey: string): Promise<Json>;
  /** Fences `idempotencyKey` in the account's home region (see IdempotencyKeys.fence). */
  fence(account: string, idempotencyKey: string): Promise<FenceResult>;
}

export interface Answer {
  status: number;
  body: Json;
  replayed: boolean;
}

/** The path an apply is fingerprinted with, the same over HTTP and in-process. */
export const applyPath = (account: string): string =>
  `/internal/accounts/${encodeURIComponent(account)}/apply`;

export function applyFingerprint(account: string, delta: number, caller = 'saga'): string {
  return requestFingerprint({
    method: 'POST',
    path: applyPath(account),
    body: canonicalJson({ delta }),
    caller,
  });
}

/** Turns a stored or fresh answer back into a result or the error it stood for. */
export function resultOf(a: { status: number; body: Json }): Json {
  if (a.status >= 200 && a.status < 300) return a.body;
  const err =
    typeof a.body === 'object' && a.body !== null && !Array.isArray(a.body) ? (a.body.error as Json) : null;
  const rec = typeof err === 'object' && err !== null && !Array.isArray(err) ? err : {};
  const code = typeof rec.code === 'string' ? rec.code : 'internal';
  const message = typeof rec.message === 'string' ? rec.message : `status ${a.status}`;
  if (code in errorStatus && errorStatus[code as keyof typeof errorStatus] === a.status) {
    const details: Record<string, unknown> = {};
    if (typeof rec.replayRegion === 'string') details.replayRegion = rec.replayRegion;
    throw new MeridianError(code as keyof typeof errorStatus, message, details);
  }
  throw new StepFailure(`${code}: ${message}`, a.status >= 400 && a.status < 500 && a.status !== 429);
}

/**
 * @example
 * const accounts = new Accounts(core, keys);
 * await accounts.open('alice', 100);
 * await accounts.apply('alice', -30, 'sg_x:debit'); // { key: 'alice', balance: 70 }
 */
export class Accounts implements AccountOps {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    readonly core: RegionCore,
    readonly keys: IdempotencyKeys,
    readonly collection = ACCOUNTS_COLLECTION,
  ) {}

  /** Creates (or resets) an account homed in this region, and indexes it. */
  async open(account: string, balance: number): Promise<Json> {
    if (!Number.isSafeInteger(balance) || balance < 0)
      throw new MeridianError('bad_request', '"balance" must be a non-negative integer');
    const view = await this.core.put(
      this.collection,
      account,
      { balance },
      {
        homeRegion: this.core.region,
        kv: [{ ns: ACCOUNTS_INDEX_NS, key: account, value: this.core.region }],
      },
    );
    return { key: view.key, balance };
  }

  async balance(account: string): Promise<number | undefined> {
    const v = (await this.core.get(this.collection, account))?.value;
    return balanceOf(v);
  }

  async apply(account: string, delta: number, idempotencyKey: string): Promise<Json> {
    return resultOf(await this.applyAnswer(account, delta, idempotencyKey, applyFingerprint(account, delta)));
  }

  /**
   * The full answer of an apply, as the HTTP route sends it. Refusals (insufficient funds, no such
   * account) are stored like successes, so a late duplicate cannot succeed where the first failed.
   */
  async applyAnswer(account: string, delta: number, idempotencyKey: string, fp: string): Promise<Answer> {
    if (!Number.isSafeInteger(delta) || delta === 0)
      throw new MeridianError('bad_request', '"delta" must be a non-zero integer');
    return this.locked(account, () =>
      withIdempotency(this.keys, idempotencyKey, fp, async (claim) => {
        const home = await this.core.homeOf(this.collection, account);
        const refuse = async (e: MeridianError) => {
          const body = e.toBody() as unknown as Json;
          await this.core.writeKv(async (read) => {
            await claim.guard(read);
            return [{ ...claim.entry(e.status, body), collection: this.collection }];
          });
          return { status: e.status, body };
        };
        if (home === undefined) return refuse(new MeridianError('not_found', `no account '${account}'`));
        if (home !== this.core.region) {
          throw new MeridianError('misdirected', `account '${account}' is homed in ${home}`, {
            replayRegion: home,
          });
        }
        const balance = await this.balance(account);
        if (balance === undefined) return refuse(new MeridianError('not_found', `no account '${account}'`));
        if (balance + delta < 0) {
          return refuse(
            new MeridianError(
              'insufficient_funds',
              `account '${account}' has ${balance}, cannot apply ${delta}`,
            ),
          );
        }
        const body: Json = { key: account, balance: balance + delta };
        await this.core.put(
          this.collection,
          account,
          { balance: balance + delta },
          { kvAfter: claim.kvAfter(200, () => body) },
        );
        return { status: 200, body };
      }),
    );
  }

  async fence(account: string, idempotencyKey: string): Promise<FenceResult> {
    return this.locked(account, async () => {
      const home = await this.core.homeOf(this.collection, account);
      if (home !== undefined && home !== this.core.region) {
        throw new MeridianError('misdirected', `account '${account}' is homed in ${home}`, {
          replayRegion: home,
        });
      }
      return this.keys.fence(idempotencyKey);
    });
  }

  /** Serialises read-check-write per account (the home region is its only writer). */
  private locked<T>(account: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(account) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(account, tail);
    void tail.then(() => {
      if (this.locks.get(account) === tail) this.locks.delete(account);
    });
    return next;
  }
}

export function balanceOf(v: Json | undefined): number | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  return typeof v.balance === 'number' ? v.balance : undefined;
}
