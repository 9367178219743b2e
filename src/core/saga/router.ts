/**
 * The account router: a transfer's coordinator reaches each account in its home region, the only
 * region that may change its balance. One implementation for the node (remote regions over HTTP)
 * and the simulator (remote regions over its simulated RPC); only the transport differs.
 */
import { isMeridianError, MeridianError } from '../errors.js';
import type { FenceResult } from '../idempotency.js';
import type { Json, RegionId } from '../types.js';
import type { AccountOps, Accounts } from './accounts.js';
import { StepFailure } from './retry.js';

export interface AccountRouterOptions {
  /** The region this router runs in. */
  region: RegionId;
  /** This region's accounts: called in-process when an account's home is here. */
  local: Accounts;
  /**
   * The accounts of another region. A call there that reaches a region which is not the home must
   * throw MeridianError 'misdirected' naming the home in `details.replayRegion` (a 421 with
   * Meridian-Replay over HTTP), as a local call does.
   */
  remote: (region: RegionId) => AccountOps;
  /** Where an account lives as far as this region knows (default: its replicated record here). */
  homeOf?: (account: string) => Promise<RegionId | undefined>;
  /** Redirects followed before giving up as unavailable (default 3). */
  maxHops?: number;
}

/**
 * Starts at the home this region knows (from a previous answer, or the replicated record), else
 * here; follows 'misdirected' to the home it names, up to `maxHops` regions.
 *
 * @example
 * const accounts = new AccountRouter({ region, local, remote: (r) => new HttpAccountOps(node, r) });
 * await accounts.apply('alice', -30, 'sg_x:debit'); // in alice's home, wherever that is
 */
export class AccountRouter implements AccountOps {
  /** Homes learnt from answers, for accounts whose record has not replicated here yet. */
  private readonly homes = new Map<string, RegionId>();
  private readonly maxHops: number;

  constructor(private readonly options: AccountRouterOptions) {
    this.maxHops = options.maxHops ?? 3;
  }

  apply(account: string, delta: number, idempotencyKey: string): Promise<Json> {
    return this.route(account, (ops) => ops.apply(account, delta, idempotencyKey));
  }

  fence(account: string, idempotencyKey: string): Promise<FenceResult> {
    return this.route(account, (ops) => ops.fence(account, idempotencyKey));
  }

  private async route<T>(account: string, call: (ops: AccountOps) => Promise<T>): Promise<T> {
    const { region: here, local, remote } = this.options;
    const known = this.options.homeOf ?? ((a: string) => local.core.homeOf(local.collection, a));
    let region = this.homes.get(account) ?? (await known(account)) ?? here;
    for (let hop = 0; hop < this.maxHops; hop++) {
      try {
        const result = await call(region === here ? local : remote(region));
        this.learn(account, region);
        return result;
      } catch (e) {
        const to = isMeridianError(e) && e.code === 'misdirected' ? e.details.replayRegion : undefined;
        if (typeof to === 'string' && to !== region) {
          region = to;
          continue;
        }
        if (answeredByHome(e)) this.learn(account, region);
        throw e;
      }
    }
    throw new MeridianError('unavailable', `could not find the home region of account '${account}'`);
  }

  private learn(account: string, region: RegionId): void {
    if (region !== this.options.region) this.homes.set(account, region);
  }
}

/** A refusal (no such account, insufficient funds, a fenced key) came from the home itself. */
function answeredByHome(e: unknown): boolean {
  if (e instanceof StepFailure) return true;
  return isMeridianError(e) && e.status < 500 && e.code !== 'misdirected';
}
