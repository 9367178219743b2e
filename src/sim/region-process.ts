/**
 * One simulated region process: a RegionCore over the region's simulated disk, plus the
 * replication driver around it (a pull loop per peer with timeouts and backoff, a long-poll
 * server answering peers' pulls, periodic acknowledgements and log compaction). A crash kills the
 * process: its timers, in-flight commits and parked requests vanish; a restart reopens the core
 * from what the disk made durable.
 */
import type { PlantedBugs, RegionEvent } from '../core/region.js';
import { RegionCore } from '../core/region.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../core/types.js';
import type { VersionVector } from '../core/version.js';
import type { Envelope, Message, Network } from './network.js';
import type { Prng } from './random.js';
import { DiskFaults, type DiskOptions, DurableState, SimStore } from './storage.js';
import type { Owner, VirtualTime } from './time.js';

export interface ReplicationOptions {
  /** A pull with nothing to send is held this long before an empty answer (long poll). */
  holdMs: number;
  /** After new changes arrive, a held pull waits this long to batch more. */
  lingerMs: number;
  /** A pull unanswered this long is retried. */
  pullTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Changes per answer at most. */
  batchLimit: number;
  /** Acknowledgements are also sent on this period, not only with the next pull. */
  heartbeatMs: number;
  compactEveryMs: number;
  compactKeep: number;
}

export const DEFAULT_REPLICATION: ReplicationOptions = {
  holdMs: 1000,
  lingerMs: 5,
  pullTimeoutMs: 3000,
  backoffMinMs: 50,
  backoffMaxMs: 2000,
  batchLimit: 500,
  heartbeatMs: 100,
  compactEveryMs: 5000,
  compactKeep: 2000,
};

export type RegionStatus = 'up' | 'starting' | 'down' | 'lost';

export interface RegionProcessDeps {
  time: VirtualTime;
  net: Network;
  rng: Prng;
  regions: readonly RegionInfo[];
  collections: readonly CollectionSpec[];
  replication: ReplicationOptions;
  bugs?: PlantedBugs;
  freeze?: boolean;
  syncTimeoutMs: number;
  maxOffsetMs: number;
  onDurable: (
    region: RegionId,
    batch: Parameters<NonNullable<DiskOptions['onDurable']>>[0],
    before: VersionVector,
  ) => void;
  onSubmit: (region: RegionId, batch: Parameters<NonNullable<DiskOptions['onSubmit']>>[0]) => void;
  onEvent: (region: RegionId, e: RegionEvent) => void;
  log: (line: string) => void;
}

interface PullLoop {
  source: RegionId;
  reqId: number;
  waiting: boolean;
  timeout: { cancelled: boolean } | undefined;
  backoffMs: number;
}

interface HeldPull {
  from: RegionId;
  reqId: number;
  have: VersionVector;
  deadlineAtMs: number;
  wake: { cancelled: boolean } | undefined;
  /** Woken by a commit and waiting out the linger. */
  lingering: boolean;
}

let nextReqId = 1;

export class RegionProcess {
  status: RegionStatus = 'down';
  core: RegionCore | undefined;
  readonly disk = new DurableState();
  readonly skew = { ms: 0 };
  /** Normal fsync time range, and a slow-disk episode's override. */
  fsyncMs: [number, number] = [1, 4];
  slowFsyncMs = 0;
  slowUntilMs = 0;
  /** Failing-disk episodes, torn fsync windows and failed commits (the disk outlives crashes). */
  readonly diskFaults: DiskFaults;
  owner: Owner = { alive: false };
  incarnation = 0;
  private loops = new Map<RegionId, PullLoop>();
  private held: HeldPull[] = [];

  constructor(
    readonly id: RegionId,
    private readonly deps: RegionProcessDeps,
  ) {
    this.diskFaults = new DiskFaults(deps.rng.fork('disk-faults'));
  }

  /** Opens (or reopens after a crash) the core over the durable state, then starts replicating. */
  async start(): Promise<void> {
    if (this.status === 'lost' || this.status === 'up' || this.status === 'starting') return;
    const d = this.deps;
    const owner: Owner = { alive: true };
    this.owner = owner;
    this.incarnation++;
    this.status = 'starting';
    const store = new SimStore(this.disk, d.time, owner, {
      fsyncMs: () => this.drawFsyncMs(),
      faults: this.diskFaults,
      freeze: d.freeze ?? false,
      onDurable: (batch, before) => d.onDurable(this.id, batch, before),
      onSubmit: (batch) => d.onSubmit(this.id, batch),
    });
    const core = await RegionCore.open({
      region: this.id,
      regions: d.regions,
      collections: d.collections,
      store,
      clock: d.time.clock(this.skew),
      timers: d.time.timers(owner),
      maxOffsetMs: d.maxOffsetMs,
      syncTimeoutMs: d.syncTimeoutMs,
      bugs: d.bugs ?? {},
      onEvent: (e) => {
        if (owner.alive) d.onEvent(this.id, e);
      },
    });
    if (!owner.alive) return;
    this.core = core;
    this.status = 'up';
    core.subscribe(() => {
      if (owner.alive) this.wakeHeld();
    });
    this.loops = new Map();
    for (const r of d.regions) {
      if (r.id === this.id) continue;
      const loop: PullLoop = {
        source: r.id,
        reqId: 0,
        waiting: false,
        timeout: undefined,
        backoffMs: d.replication.backoffMinMs,
      };
      this.loops.set(r.id, loop);
      this.sendPull(loop);
    }
    this.heartbeat(owner);
    d.time.after(d.rng.range(0, d.replication.compactEveryMs), () => this.compactTick(owner), owner);
  }

  /** Kills the process: nothing it scheduled runs again; commits not yet durable are lost. */
  crash(): void {
    if (this.status !== 'up' && this.status !== 'starting') return;
    this.owner.alive = false;
    this.core?.close();
    this.core = undefined;
    this.held = [];
    this.status = 'down';
  }

  /** The region and its disk are gone for good. */
  lose(): void {
    this.crash();
    this.status = 'lost';
  }

  private drawFsyncMs(): number {
    if (this.deps.time.nowMs < this.slowUntilMs) return this.slowFsyncMs * (0.5 + this.deps.rng.next());
    return this.deps.rng.range(this.fsyncMs[0], this.fsyncMs[1]);
  }

  // ------------------------------------------------------------ client side of replication

  private sendPull(loop: PullLoop): void {
    const core = this.core;
    if (!core || this.status !== 'up') return;
    const d = this.deps;
    const owner = this.owner;
    loop.reqId = nextReqId++;
    loop.waiting = true;
    d.net.send(this.id, loop.source, { type: 'pull', reqId: loop.reqId, have: core.ackVersion() });
    const reqId = loop.reqId;
    loop.timeout = d.time.after(
      d.replication.pullTimeoutMs,
      () => {
        if (loop.reqId !== reqId || !loop.waiting) return;
        loop.waiting = false;
        this.retryLater(loop, owner);
      },
      owner,
    );
  }

  private retryLater(loop: PullLoop, owner: Owner): void {
    const d = this.deps;
    const wait = loop.backoffMs * (0.5 + d.rng.next());
    loop.backoffMs = Math.min(d.replication.backoffMaxMs, loop.backoffMs * 2);
    d.time.after(wait, () => this.sendPull(loop), owner);
  }

  private async onAnswer(
    from: RegionId,
    msg: Extract<Message, { type: 'changes' | 'snapshot' }>,
  ): Promise<void> {
    const core = this.core;
    const loop = this.loops.get(from);
    if (!core || !loop) return;
    const owner = this.owner;
    // Duplicates and answers to abandoned pulls are still applied (harmlessly); only the current one drives the loop.
    const current = loop.waiting && msg.reqId === loop.reqId;
    if (current) {
      loop.waiting = false;
      if (loop.timeout) loop.timeout.cancelled = true;
    }
    let ok = true;
    try {
      if (msg.type === 'changes') {
        if (msg.changes.length > 0) await core.applyRemote(from, msg.changes);
      } else {
        await core.applySnapshot(from, msg.snapshot, msg.omitted);
      }
    } catch (e) {
      ok = false;
      if (owner.alive) this.deps.log(`${this.id}: applying from ${from} failed: ${(e as Error).message}`);
    }
    if (!current || !owner.alive) return;
    if (ok) {
      loop.backoffMs = this.deps.replication.backoffMinMs;
      this.sendPull(loop);
    } else {
      this.retryLater(loop, owner);
    }
  }

  // ------------------------------------------------------------ server side of replication

  private async serve(h: HeldPull): Promise<void> {
    const core = this.core;
    if (!core) return;
    const owner = this.owner;
    const d = this.deps;
    const versionBefore = core.version;
    const res = await core.pull(h.from, h.have, d.replication.batchLimit);
    if (!owner.alive) return;
    if (res.kind === 'snapshot') {
      d.net.send(this.id, h.from, {
        type: 'snapshot',
        reqId: h.reqId,
        snapshot: res.snapshot,
        omitted: res.omittedCollections,
      });
      return;
    }
    if (res.changes.length > 0 || d.time.nowMs >= h.deadlineAtMs) {
      d.net.send(this.id, h.from, { type: 'changes', reqId: h.reqId, changes: res.changes });
      return;
    }
    // Nothing new: hold the pull until something commits or the hold expires.
    // A commit between reading the log and parking here must still wake it.
    h.lingering = core.version !== versionBefore;
    this.held.push(h);
    h.wake = h.lingering
      ? d.time.after(d.replication.lingerMs, () => this.release(h), owner)
      : d.time.at(h.deadlineAtMs, () => this.release(h), owner);
  }

  private release(h: HeldPull): void {
    const i = this.held.indexOf(h);
    if (i < 0) return;
    this.held.splice(i, 1);
    if (h.wake) h.wake.cancelled = true;
    void this.serve(h);
  }

  private drop(h: HeldPull): void {
    const i = this.held.indexOf(h);
    if (i >= 0) this.held.splice(i, 1);
    if (h.wake) h.wake.cancelled = true;
  }

  private wakeHeld(): void {
    if (this.held.length === 0) return;
    const owner = this.owner;
    for (const h of this.held) {
      if (h.lingering) continue;
      h.lingering = true;
      if (h.wake) h.wake.cancelled = true;
      h.wake = this.deps.time.after(this.deps.replication.lingerMs, () => this.release(h), owner);
    }
  }

  /** A message from the network; dropped unless the process is up. */
  receive(env: Envelope): void {
    if (this.status !== 'up' || !this.core) return;
    const m = env.msg;
    switch (m.type) {
      case 'pull': {
        // A newer pull from the same peer replaces a held one (the peer gave up on it).
        for (const h of this.held.filter((x) => x.from === env.from)) this.drop(h);
        void this.serve({
          from: env.from,
          reqId: m.reqId,
          have: m.have,
          deadlineAtMs: this.deps.time.nowMs + this.deps.replication.holdMs,
          wake: undefined,
          lingering: false,
        });
        return;
      }
      case 'changes':
      case 'snapshot':
        void this.onAnswer(env.from, m);
        return;
      case 'ack':
        this.core.onPeerAck(env.from, m.version);
        return;
    }
  }

  private heartbeat(owner: Owner): void {
    const d = this.deps;
    d.time.after(
      d.replication.heartbeatMs,
      () => {
        const core = this.core;
        if (!core || !owner.alive) return;
        const version = core.ackVersion();
        for (const r of d.regions) if (r.id !== this.id) d.net.send(this.id, r.id, { type: 'ack', version });
        this.heartbeat(owner);
      },
      owner,
    );
  }

  private compactTick(owner: Owner): void {
    const d = this.deps;
    const core = this.core;
    if (!core || !owner.alive) return;
    void core.compactLog(d.replication.compactKeep);
    d.time.after(d.replication.compactEveryMs, () => this.compactTick(owner), owner);
  }

  /** A forced compaction (fault): peers behind the cut will need a snapshot. */
  async compactNow(keep: number, force: boolean): Promise<void> {
    await this.core?.compactLog(keep, { force });
  }
}
