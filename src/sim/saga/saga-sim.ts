/**
 * The saga and idempotency workloads in the deterministic simulator: real region processes (the
 * simulator's RegionProcess, replicating over the simulated WAN), a saga engine and idempotency
 * keys on each, clients that start transfers and send keyed deposits and increments, and faults:
 * coordinator crashes mid-saga, partitions between steps, duplicated deliveries, and client retries
 * in another region after a failover. The checkers then judge the final state.
 */
import { homeOfNewKey } from '../../core/collection.js';
import { isMeridianError, MeridianError } from '../../core/errors.js';
import {
  canonicalJson,
  type IdempotencyBugs,
  IdempotencyKeys,
  requestFingerprint,
  withIdempotency,
} from '../../core/idempotency.js';
import { loadRegionTable } from '../../core/regions.js';
import { type AccountOps, Accounts } from '../../core/saga/accounts.js';
import { type SagaBugs, SagaEngine } from '../../core/saga/engine.js';
import { AccountRouter } from '../../core/saga/router.js';
import { startSaga } from '../../core/saga/start.js';
import { transferSaga } from '../../core/saga/transfer.js';
import { isFinal, type SagaMode } from '../../core/saga/types.js';
import type { CollectionSpec, Json, RegionId, RegionInfo } from '../../core/types.js';
import { versionsEqual } from '../../core/version.js';
import { Network, NO_LINK_FAULTS } from '../network.js';
import { Prng } from '../random.js';
import { DEFAULT_REPLICATION, RegionProcess } from '../region-process.js';
import { type Owner, VirtualTime } from '../time.js';
import { checkSagaRun, type SagaViolation } from './checkers.js';

export interface SagaSimOptions {
  seed: number;
  regions: RegionId[];
  /** How long clients send work (virtual ms); then faults heal and the run settles. */
  durationMs: number;
  transfersPerSec: number;
  depositsPerSec: number;
  incrementsPerSec: number;
  faults: boolean;
  /** Deliberate defects of the product code (core/idempotency.ts, core/saga/engine.ts) that prove the checkers catch them. */
  bugs?: SagaSimBugs;
}

/** The planted bugs of the saga and idempotency workloads, by their `--bug` names. */
export type SagaSimBugs = IdempotencyBugs & SagaBugs;
export const SAGA_BUGS = [
  'forgetIdempotencyAnswers',
  'settleWithoutFence',
] as const satisfies readonly (keyof SagaSimBugs)[];

export const DEFAULT_SAGA_SIM: Omit<SagaSimOptions, 'seed'> = {
  regions: ['us-east-1', 'eu-west-1', 'ap-northeast-1'],
  durationMs: 8000,
  transfersPerSec: 12,
  depositsPerSec: 8,
  incrementsPerSec: 8,
  faults: true,
};

export const TRANSFER_ACCOUNTS_PER_REGION = 3;
export const DEPOSIT_ACCOUNTS_PER_REGION = 2;
export const INITIAL_BALANCE = 100;
const CLIENT_TIMEOUT_MS = 2500;
const SETTLE_MAX_MS = 180_000;

/** What one region runs on top of its process: idempotency keys, accounts and a saga engine. */
interface SagaNode {
  region: RegionId;
  owner: Owner;
  keys: IdempotencyKeys;
  accounts: Accounts;
  engine: SagaEngine;
}

export interface DepositRecord {
  key: string;
  account: string;
  amount: number;
}

export interface IncrementRecord {
  key: string;
  counter: string;
  /** The region the client sends it to (keyed increments are retried in the same region). */
  region: RegionId;
}

export interface SagaSimResult {
  options: SagaSimOptions;
  violations: SagaViolation[];
  stats: {
    sagas: number;
    completed: number;
    compensated: number;
    stuck: number;
    running: number;
    /** Sagas that had a step with an unknown outcome, settled by a fence. */
    settled: number;
    /** Sagas handed from region to region (choreography). */
    handedOver: number;
    deposits: number;
    increments: number;
    crashes: number;
    partitions: number;
    clientRetriesElsewhere: number;
    duplicatedDeliveries: number;
    settledAtMs: number;
    quiesced: boolean;
  };
  /** The command that replays this run. */
  replay: string;
}

export function transferAccounts(regions: readonly RegionId[]): { key: string; home: RegionId }[] {
  return accountsHomedIn(regions, 't', TRANSFER_ACCOUNTS_PER_REGION);
}

export function depositAccounts(regions: readonly RegionId[]): { key: string; home: RegionId }[] {
  return accountsHomedIn(regions, 'd', DEPOSIT_ACCOUNTS_PER_REGION);
}

/**
 * `count` account keys per region whose home is that region: a new key's home is the rule every
 * region applies (homeOfNewKey), so the keys are picked to fall in each region.
 */
function accountsHomedIn(
  regions: readonly RegionId[],
  prefix: string,
  count: number,
): { key: string; home: RegionId }[] {
  const spec = sagaSimCollections(regions).find((c) => c.name === 'accounts')!;
  return regions.flatMap((r) => {
    const out: { key: string; home: RegionId }[] = [];
    for (let j = 0; out.length < count; j++) {
      const key = `${prefix}-${r}-${j}`;
      if (homeOfNewKey(spec, regions, key) === r) out.push({ key, home: r });
    }
    return out;
  });
}

export const sagaSimCollections = (regions: readonly RegionId[]): CollectionSpec[] => [
  {
    name: 'accounts',
    policy: 'pinned',
    replication: regions.length > 1 ? { mode: 'sync', acks: 'majority', timeoutMs: 1500 } : { mode: 'async' },
  },
  { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
];

/**
 * Runs one seed of the saga and idempotency workloads.
 * @example
 * const r = await simulateSagas({ ...DEFAULT_SAGA_SIM, seed: 3 });
 * for (const v of r.violations) console.log(v.checker, v.message);
 */
export async function simulateSagas(options: SagaSimOptions): Promise<SagaSimResult> {
  return new SagaSimulation(options).run();
}

class SagaSimulation {
  readonly time = new VirtualTime();
  readonly rng: Prng;
  readonly net: Network;
  readonly regions: RegionInfo[];
  readonly procs = new Map<RegionId, RegionProcess>();
  readonly nodes = new Map<RegionId, SagaNode>();
  readonly oneWayMs: (a: RegionId, b: RegionId) => number;
  readonly sagaIds = new Set<string>();
  readonly deposits: DepositRecord[] = [];
  readonly increments: IncrementRecord[] = [];
  readonly stats: SagaSimResult['stats'] = {
    sagas: 0,
    completed: 0,
    compensated: 0,
    stuck: 0,
    running: 0,
    settled: 0,
    handedOver: 0,
    deposits: 0,
    increments: 0,
    crashes: 0,
    partitions: 0,
    clientRetriesElsewhere: 0,
    duplicatedDeliveries: 0,
    settledAtMs: 0,
    quiesced: false,
  };
  private readonly clientRng: Prng;
  private readonly faultRng: Prng;
  private readonly rpcRng: Prng;
  private seq = 0;
  private pendingClients = 0;

  constructor(readonly options: SagaSimOptions) {
    this.rng = new Prng(options.seed >>> 0);
    const table = loadRegionTable();
    this.oneWayMs = (a, b) => table.oneWayMs(a, b);
    this.regions = options.regions.map((id) => {
      const r = table.get(id);
      return { id: r.id, lat: r.lat, lon: r.lon };
    });
    const link = options.faults
      ? { ...NO_LINK_FAULTS, dupRate: 0.05, lossRate: 0.01, jitterFrac: 0.1 }
      : NO_LINK_FAULTS;
    this.net = new Network(this.time, this.rng.fork('network'), this.oneWayMs, link);
    this.clientRng = this.rng.fork('clients');
    this.faultRng = this.rng.fork('faults');
    this.rpcRng = this.rng.fork('rpc');
    const collections = sagaSimCollections(options.regions);
    for (const r of options.regions) {
      const proc = new RegionProcess(r, {
        time: this.time,
        net: this.net,
        rng: this.rng.fork(`region-${r}`),
        regions: this.regions,
        collections,
        replication: DEFAULT_REPLICATION,
        syncTimeoutMs: 1500,
        maxOffsetMs: 500,
        onDurable: () => {},
        onSubmit: () => {},
        onEvent: () => {},
        log: () => {},
      });
      this.procs.set(r, proc);
    }
    this.net.onDeliver = (env) => this.procs.get(env.to)?.receive(env);
  }

  async run(): Promise<SagaSimResult> {
    const o = this.options;
    for (const r of o.regions) await this.drive(this.startRegion(r));
    await this.openAccounts();
    const t0 = this.time.nowMs;
    const end = t0 + o.durationMs;
    this.schedulePoisson(o.transfersPerSec, end, () => this.clientTransfer());
    this.schedulePoisson(o.depositsPerSec, end, () => this.clientDeposit());
    this.schedulePoisson(o.incrementsPerSec, end, () => this.clientIncrement());
    if (o.faults) this.scheduleFaults(t0, end);
    await this.time.runUntil(end);
    // Heal everything, bring every region back, and let the sagas finish.
    this.net.healAll();
    this.net.faults = NO_LINK_FAULTS;
    for (const r of o.regions) if (this.procs.get(r)!.status === 'down') void this.startRegion(r);
    await this.settle();
    const violations = await checkSagaRun(this);
    for (const v of violations) v.replay = this.replayCommand();
    return { options: o, violations, stats: this.stats, replay: this.replayCommand() };
  }

  replayCommand(): string {
    const o = this.options;
    const flags = [`--seed ${o.seed}`, `--duration ${o.durationMs}ms`, `--regions ${o.regions.join(',')}`];
    if (!o.faults) flags.push('--no-faults');
    for (const b of SAGA_BUGS) if (o.bugs?.[b]) flags.push(`--bug ${b}`);
    return `npm run sim -- --workload saga ${flags.join(' ')}`;
  }

  node(region: RegionId): SagaNode | undefined {
    const n = this.nodes.get(region);
    return n?.owner.alive ? n : undefined;
  }

  private async startRegion(region: RegionId): Promise<void> {
    const proc = this.procs.get(region)!;
    // One node per process incarnation: a restart of a region that is up (or starting) is a no-op.
    if (proc.status !== 'down') return;
    await proc.start();
    const core = proc.core;
    const status = proc.status as RegionProcess['status'];
    if (status !== 'up' || !core || this.nodes.get(region)?.owner === proc.owner) return;
    const owner = proc.owner;
    const clock = this.time.clock(proc.skew);
    const bugs = this.options.bugs ?? {};
    const keys = new IdempotencyKeys({ region, kv: core, clock, ttlMs: 24 * 3600 * 1000, bugs });
    const accounts = new Accounts(core, keys);
    const engine = new SagaEngine({
      region,
      kv: core,
      clock,
      timers: this.time.timers(owner),
      random: this.rng.fork(`saga-${region}-${proc.incarnation}`),
      retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000, stepTimeoutMs: 1200 },
      bugs,
    });
    const router = new AccountRouter({
      region,
      local: accounts,
      remote: (to) => rpcAccounts(this, region, to),
    });
    const remote = whileUp(this, region, router);
    engine.register(transferSaga((mode) => (mode === 'choreography' ? accounts : remote)));
    const node: SagaNode = { region, owner, keys, accounts, engine };
    this.nodes.set(region, node);
    core.subscribe((changes) => {
      if (owner.alive) engine.onCommitted(changes);
    });
    await engine.resume();
  }

  private crash(region: RegionId): void {
    const proc = this.procs.get(region)!;
    if (proc.status !== 'up') return;
    this.stats.crashes++;
    this.nodes.get(region)?.engine.stop();
    this.nodes.delete(region);
    proc.crash();
  }

  private async openAccounts(): Promise<void> {
    const all = [...transferAccounts(this.options.regions), ...depositAccounts(this.options.regions)];
    await this.drive(
      Promise.all(
        all.map((a) =>
          this.node(a.home)!
            .accounts.open(a.key, a.key.startsWith('t-') ? INITIAL_BALANCE : 0)
            // Not confirmed in time while the streams connect: committed, and it will replicate.
            .catch((e: unknown) => {
              if (!(isMeridianError(e) && e.code === 'sync_timeout')) throw e;
            }),
        ),
      ),
    );
    await this.time.runUntil(this.time.nowMs + 3000);
  }

  /** Runs virtual time until `p` settles (simulated I/O only progresses while time runs). */
  private async drive<T>(p: Promise<T>): Promise<T> {
    let done = false;
    const watched = p.finally(() => {
      done = true;
    });
    watched.catch(() => {});
    while (!done) {
      await new Promise((r) => setImmediate(r));
      const next = this.time.nextAtMs();
      await this.time.runUntil(next ?? this.time.nowMs, () => done);
      if (next === undefined && !done) await new Promise((r) => setImmediate(r));
    }
    return watched;
  }

  private schedulePoisson(perSec: number, endMs: number, fn: () => void): void {
    if (perSec <= 0) return;
    const meanMs = 1000 / perSec;
    const next = (): void => {
      if (this.time.nowMs >= endMs) return;
      fn();
      this.time.after(this.clientRng.exp(meanMs), next);
    };
    this.time.after(this.clientRng.exp(meanMs), next);
  }

  private scheduleFaults(startMs: number, endMs: number): void {
    const regions = this.options.regions;
    let at = startMs + this.faultRng.range(300, 1200);
    while (at < endMs) {
      const kind = this.faultRng.next();
      if (kind < 0.5) {
        const region = this.faultRng.pick(regions);
        const downMs = this.faultRng.range(300, 2500);
        this.time.at(at, () => {
          this.crash(region);
          this.time.after(downMs, () => void this.startRegion(region));
        });
      } else if (regions.length > 1) {
        const a = this.faultRng.pick(regions);
        const b = this.faultRng.pick(regions.filter((r) => r !== a));
        const durationMs = this.faultRng.range(500, 3000);
        this.time.at(at, () => {
          this.stats.partitions++;
          this.net.partition([a], [b], false);
          this.time.after(durationMs, () => this.net.heal([a], [b], false));
        });
      }
      at += this.faultRng.range(600, 2000);
    }
  }

  /** Runs until every region is up and converged, no saga runs anywhere, and every saga is final everywhere. */
  private async settle(): Promise<void> {
    const deadline = this.time.nowMs + SETTLE_MAX_MS;
    let done = false;
    const check = async (): Promise<void> => {
      done = await this.quiet();
      if (!done) this.time.after(500, () => void check());
    };
    this.time.after(500, () => void check());
    await this.time.runUntil(deadline, () => done);
    this.stats.quiesced = done;
    this.stats.settledAtMs = this.time.nowMs;
  }

  private async quiet(): Promise<boolean> {
    if (this.pendingClients > 0) return false;
    const procs = [...this.procs.values()];
    if (!procs.every((p) => p.status === 'up' && p.core)) return false;
    const v0 = procs[0]!.core!.version;
    if (!procs.every((p) => versionsEqual(p.core!.version, v0))) return false;
    for (const r of this.options.regions) {
      const n = this.node(r);
      if (!n || n.engine.activeCount() > 0) return false;
      for (const s of await n.engine.list()) if (!isFinal(s.status)) return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ network calls between regions

  /**
   * Calls `fn` on `to`'s node from `from`: a request and a reply, each one WAN hop, lost on a cut
   * link or a dead process, sometimes delivered twice. The caller's step timeout covers the losses.
   */
  rpc<T>(from: RegionId, to: RegionId, fn: (n: SagaNode) => Promise<T>): Promise<T> {
    const caller = this.nodes.get(from)?.owner;
    return new Promise<T>((resolve, reject) => {
      const deliver = (reply: boolean): void => {
        if (this.net.isCut(from, to)) return;
        const target = this.node(to);
        if (!target) return;
        const p = fn(target);
        if (!reply) {
          p.catch(() => {});
          return;
        }
        p.then(
          (v) => this.back(to, from, caller, () => resolve(v)),
          (e: unknown) => this.back(to, from, caller, () => reject(e)),
        );
      };
      this.time.after(this.hop(from, to), () => deliver(true));
      if (this.options.faults && this.rpcRng.chance(0.1)) {
        this.stats.duplicatedDeliveries++;
        this.time.after(this.hop(from, to) + this.rpcRng.range(0, 300), () => deliver(false));
      }
    });
  }

  private back(from: RegionId, to: RegionId, caller: Owner | undefined, fn: () => void): void {
    this.time.after(this.hop(from, to), () => {
      if (this.net.isCut(from, to) || !caller?.alive) return;
      fn();
    });
  }

  private hop(a: RegionId, b: RegionId): number {
    return a === b ? 0 : this.oneWayMs(a, b) * (1 + 0.1 * this.rpcRng.next());
  }

  // ------------------------------------------------------------------ clients

  private clientTransfer(): void {
    const rng = this.clientRng;
    const accounts = transferAccounts(this.options.regions);
    const from = rng.pick(accounts).key;
    let to = rng.pick(accounts.filter((a) => a.key !== from)).key;
    if (rng.chance(0.05)) to = 'ghost';
    const input: Json = { from, to, amount: rng.int(1, 60) };
    const mode: SagaMode = rng.chance(0.3) ? 'choreography' : 'orchestration';
    const key = `transfer-${this.seq++}`;
    const fp = requestFingerprint({
      method: 'POST',
      path: '/v1/sagas/transfer',
      body: canonicalJson(input),
      caller: 'client',
    });
    const send = (region: RegionId, attempt: number): void => {
      this.pendingClients++;
      let answered = false;
      const finish = (retry: boolean): void => {
        if (answered) return;
        answered = true;
        this.pendingClients--;
        if (retry && attempt < 8) {
          // Failover: the client retries the same key in another region.
          const next = this.failover(region);
          if (next !== region) this.stats.clientRetriesElsewhere++;
          this.time.after(300, () => send(next, attempt + 1));
        }
      };
      const n = this.node(region);
      if (!n) {
        finish(true);
        return;
      }
      this.time.after(CLIENT_TIMEOUT_MS, () => finish(true));
      startSaga(n.keys, n.engine, {
        type: 'transfer',
        input,
        idempotencyKey: key,
        fp,
        caller: 'client',
        mode,
      }).then(
        (a) => {
          if (!n.owner.alive) return;
          const id = (a.body as { id?: unknown }).id;
          if (a.status === 202 && typeof id === 'string') {
            if (!this.sagaIds.has(id)) this.stats.sagas++;
            this.sagaIds.add(id);
          }
          // Sometimes the answer is lost on the way back: the client cannot tell, and retries elsewhere.
          finish(this.options.faults && rng.chance(0.1));
        },
        (e: unknown) => {
          if (!n.owner.alive) return;
          finish(!isMeridianError(e) || e.status >= 500 || e.status === 409);
        },
      );
    };
    send(rng.pick(this.options.regions), 0);
  }

  private failover(region: RegionId): RegionId {
    const others = this.options.regions.filter((r) => r !== region && this.node(r));
    return others.length > 0 ? this.clientRng.pick(others) : region;
  }

  private clientDeposit(): void {
    const rng = this.clientRng;
    const account = rng.pick(depositAccounts(this.options.regions)).key;
    const amount = rng.int(1, 1000);
    const key = `deposit-${this.seq++}`;
    this.deposits.push({ key, account, amount });
    this.stats.deposits++;
    const send = (region: RegionId, attempt: number): void => {
      this.pendingClients++;
      let answered = false;
      const finish = (next: RegionId | undefined): void => {
        if (answered) return;
        answered = true;
        this.pendingClients--;
        if (next !== undefined && attempt < 10) this.time.after(200, () => send(next, attempt + 1));
      };
      const n = this.node(region);
      if (!n) {
        finish(this.failover(region));
        return;
      }
      this.time.after(CLIENT_TIMEOUT_MS, () => finish(region));
      const call = (): Promise<Json> => n.accounts.apply(account, amount, key);
      const handle = (p: Promise<Json>, primary: boolean): void => {
        p.then(
          () => {
            if (primary && n.owner.alive)
              finish(this.options.faults && rng.chance(0.1) ? this.failover(region) : undefined);
          },
          (e: unknown) => {
            if (!primary || !n.owner.alive) return;
            const home = isMeridianError(e) && e.code === 'misdirected' ? e.details.replayRegion : undefined;
            finish(typeof home === 'string' ? home : region);
          },
        );
      };
      handle(call(), true);
      if (this.options.faults && rng.chance(0.15)) {
        this.stats.duplicatedDeliveries++;
        this.time.after(rng.range(0, 50), () => {
          if (n.owner.alive) handle(call(), false);
        });
      }
    };
    send(rng.pick(this.options.regions), 0);
  }

  private clientIncrement(): void {
    const rng = this.clientRng;
    const region = rng.pick(this.options.regions);
    const counter = `c-${rng.int(0, 3)}`;
    const key = `inc-${this.seq++}`;
    this.increments.push({ key, counter, region });
    this.stats.increments++;
    const fp = requestFingerprint({
      method: 'POST',
      path: `/v1/likes/${counter}/increment`,
      body: '{"by":1}',
      caller: 'client',
    });
    const send = (attempt: number): void => {
      this.pendingClients++;
      let answered = false;
      const finish = (retry: boolean): void => {
        if (answered) return;
        answered = true;
        this.pendingClients--;
        if (retry && attempt < 20) this.time.after(400, () => send(attempt + 1));
      };
      const n = this.node(region);
      if (!n) {
        finish(true);
        return;
      }
      this.time.after(CLIENT_TIMEOUT_MS, () => finish(true));
      const once = () =>
        withIdempotency(n.keys, key, fp, async (claim) => {
          const core = this.procs.get(region)!.core;
          if (!core) throw new MeridianError('unavailable', `${region} is down`);
          const v = await core.increment('likes', counter, 1, {
            kvAfter: claim.kvAfter(200, (view: { key: string; value: Json }) => ({
              key: view.key,
              value: view.value,
            })),
          });
          return { status: 200, body: { key: v.key, value: v.value } };
        });
      once().then(
        () => {
          if (n.owner.alive) finish(this.options.faults && rng.chance(0.1));
        },
        () => {
          if (n.owner.alive) finish(true);
        },
      );
      if (this.options.faults && rng.chance(0.15)) {
        this.stats.duplicatedDeliveries++;
        this.time.after(rng.range(0, 20), () => {
          if (n.owner.alive) once().catch(() => {});
        });
      }
    };
    send(0);
  }
}

/** The accounts of region `to`, one simulated RPC away from `from` (the core's AccountRouter routes). */
function rpcAccounts(sim: SagaSimulation, from: RegionId, to: RegionId): AccountOps {
  return {
    apply: (account, delta, key) => sim.rpc(from, to, (n) => n.accounts.apply(account, delta, key)),
    fence: (account, key) => sim.rpc(from, to, (n) => n.accounts.fence(account, key)),
  };
}

/** Refuses every call once the region's process is down (its engine may still hold continuations). */
function whileUp(sim: SagaSimulation, region: RegionId, ops: AccountOps): AccountOps {
  const up = <T>(call: () => Promise<T>): Promise<T> =>
    sim.node(region) ? call() : Promise.reject(new MeridianError('unavailable', `${region} is down`));
  return {
    apply: (account, delta, key) => up(() => ops.apply(account, delta, key)),
    fence: (account, key) => up(() => ops.fence(account, key)),
  };
}

export type { SagaSimulation };
