/**
 * One simulated region process: a RegionCore over the region's simulated disk, plus the node's
 * replication driver (src/core/replication, the same code the region node runs) over the simulated
 * network (replication-transport.ts). A crash kills the process: its timers, in-flight commits and
 * streams vanish; a restart reopens the core from what the disk made durable.
 */
import type { PlantedBugs, RegionEvent } from '../core/region.js';
import { RegionCore } from '../core/region.js';
import { ReplicationDriver, type ReplicationSettings } from '../core/replication/driver.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../core/types.js';
import type { VersionVector } from '../core/version.js';
import type { Envelope, Network } from './network.js';
import type { Prng } from './random.js';
import { refuseAsHost, SimTransport } from './replication-transport.js';
import { DiskFaults, type DiskOptions, DurableState, SimStore } from './storage.js';
import type { Owner, VirtualTime } from './time.js';

/** The simulator's replication settings: the node's defaults (meridian.yaml), compaction more often. */
export const DEFAULT_REPLICATION: ReplicationSettings = {
  heartbeatMs: 1000,
  reconnectMinMs: 100,
  reconnectMaxMs: 5000,
  logKeep: 2000,
  logMaxRetain: 100_000,
  compactIntervalMs: 5000,
  ackBatchMs: 100,
  feedLingerMs: 20,
};

/** Durations the driver measures (heartbeats, downtime) are read from virtual time, without skew. */
const NO_SKEW = { ms: 0 };

export type RegionStatus = 'up' | 'starting' | 'down' | 'lost';

export interface RegionProcessDeps {
  time: VirtualTime;
  net: Network;
  rng: Prng;
  regions: readonly RegionInfo[];
  collections: readonly CollectionSpec[];
  replication: ReplicationSettings;
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
  /** The replication driver of the running incarnation, and its transport. */
  driver: ReplicationDriver | undefined;
  private transport: SimTransport | undefined;

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
    const transport = new SimTransport(this.id, d.net, d.time, owner, this.incarnation);
    const driver = new ReplicationDriver({
      core,
      peers: d.regions.map((r) => r.id).filter((r) => r !== this.id),
      transport,
      clock: d.time.clock(NO_SKEW),
      timers: d.time.timers(owner),
      random: d.rng,
      settings: d.replication,
      events: {
        feedFailed: (peer, err) => {
          if (owner.alive) d.log(`${this.id}: stream to ${peer} failed: ${err.message}`);
        },
        compactionFailed: (err) => {
          if (owner.alive) d.log(`${this.id}: compaction failed: ${err.message}`);
        },
      },
    });
    transport.server = driver;
    this.transport = transport;
    this.driver = driver;
    driver.start();
  }

  /** Kills the process: nothing it scheduled runs again; commits not yet durable are lost. */
  crash(): void {
    if (this.status !== 'up' && this.status !== 'starting') return;
    this.owner.alive = false;
    this.core?.close();
    this.core = undefined;
    this.driver = undefined;
    this.transport = undefined;
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

  /** A message from the network: to the driver's transport while up; refused by the host while down. */
  receive(env: Envelope): void {
    if (this.status === 'up' && this.transport) {
      this.transport.receive(env);
      return;
    }
    if (this.status !== 'lost') refuseAsHost(this.deps.net, env);
  }

  /** A forced compaction (fault): peers behind the cut will need a snapshot. */
  async compactNow(keep: number, force: boolean): Promise<void> {
    await this.core?.compactLog(keep, { force });
  }
}

/**
 * Starts one region process per id on `net`, with the node's replication settings and no
 * observers, and delivers the network's messages to them: a quiet cluster for measurements and
 * tests that look at the regions themselves rather than at a history.
 * @example const procs = await startQuietRegions(['us-east-1', 'eu-west-1'], { time, net, rngFor: (r) => rng.fork(r), regions, collections });
 */
export async function startQuietRegions(
  ids: readonly RegionId[],
  o: {
    time: VirtualTime;
    net: Network;
    /** Called once per id, in order (a forked PRNG keeps the run deterministic). */
    rngFor: (id: RegionId) => Prng;
    regions: readonly RegionInfo[];
    collections: readonly CollectionSpec[];
  },
): Promise<Map<RegionId, RegionProcess>> {
  const procs = new Map<RegionId, RegionProcess>();
  for (const r of ids) {
    procs.set(
      r,
      new RegionProcess(r, {
        time: o.time,
        net: o.net,
        rng: o.rngFor(r),
        regions: o.regions,
        collections: o.collections,
        replication: DEFAULT_REPLICATION,
        syncTimeoutMs: 5000,
        maxOffsetMs: 500,
        onDurable: () => {},
        onSubmit: () => {},
        onEvent: () => {},
        log: () => {},
      }),
    );
  }
  o.net.onDeliver = (env) => procs.get(env.to)?.receive(env);
  for (const p of procs.values()) await p.start();
  return procs;
}
