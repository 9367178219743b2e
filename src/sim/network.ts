/**
 * The simulated WAN between regions: one-way delay = RTT/2 from the region table, with jitter,
 * loss, duplication, reordering and partitions (symmetric or one-way). Every message passes one
 * inspection hook before it leaves, so checkers can see all traffic.
 */
import type { Change } from '../core/change.js';
import type { Snapshot } from '../core/store.js';
import type { RegionId } from '../core/types.js';
import type { VersionVector } from '../core/version.js';
import type { Prng } from './random.js';
import type { VirtualTime } from './time.js';

/** Region-to-region messages of the pull protocol. */
export type Message =
  | { type: 'pull'; reqId: number; have: VersionVector }
  | { type: 'changes'; reqId: number; changes: Change[] }
  | { type: 'snapshot'; reqId: number; snapshot: Snapshot; omitted: string[] }
  | { type: 'ack'; version: VersionVector };

export interface Envelope {
  from: RegionId;
  to: RegionId;
  msg: Message;
}

export interface LinkFaults {
  /** Probability a message is dropped. */
  lossRate: number;
  /** Probability a message is delivered twice. */
  dupRate: number;
  /** Probability a message is held back by up to `reorderMaxMs`, so later ones overtake it. */
  reorderRate: number;
  reorderMaxMs: number;
  /** Delay varies uniformly by +/- this fraction of the one-way delay. */
  jitterFrac: number;
}

export const NO_LINK_FAULTS: LinkFaults = {
  lossRate: 0,
  dupRate: 0,
  reorderRate: 0,
  reorderMaxMs: 0,
  jitterFrac: 0,
};

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  partitioned: number;
  duplicated: number;
  reordered: number;
}

/**
 * @example
 * const net = new Network(time, rng.fork('net'), (a, b) => table.oneWayMs(a, b), faults);
 * net.onDeliver = (env) => regions.get(env.to)!.receive(env);
 * net.send('us-east-1', 'eu-west-1', { type: 'ack', version: {} });
 */
export class Network {
  onDeliver: (env: Envelope) => void = () => {};
  onSend: (env: Envelope) => void = () => {};
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    partitioned: 0,
    duplicated: 0,
    reordered: 0,
  };
  /**
   * Directed links cut by partitions (from -> to -> how many partitions cut it; they may overlap).
   * Two levels so that checking a link, done for every message twice, builds no key string.
   */
  private readonly cut = new Map<RegionId, Map<RegionId, number>>();

  constructor(
    private readonly time: VirtualTime,
    private readonly rng: Prng,
    private readonly oneWayMs: (a: RegionId, b: RegionId) => number,
    public faults: LinkFaults,
  ) {}

  send(from: RegionId, to: RegionId, msg: Message): void {
    const env: Envelope = { from, to, msg };
    this.stats.sent++;
    this.onSend(env);
    if (this.isCut(from, to)) {
      this.stats.partitioned++;
      return;
    }
    if (this.rng.chance(this.faults.lossRate)) {
      this.stats.lost++;
      return;
    }
    this.schedule(env);
    if (this.rng.chance(this.faults.dupRate)) {
      this.stats.duplicated++;
      this.schedule(env);
    }
  }

  private schedule(env: Envelope): void {
    const base = this.oneWayMs(env.from, env.to);
    const f = this.faults;
    let delay = base * (1 + f.jitterFrac * (2 * this.rng.next() - 1));
    if (this.rng.chance(f.reorderRate)) {
      this.stats.reordered++;
      delay += this.rng.next() * f.reorderMaxMs;
    }
    this.time.after(Math.max(1, delay), () => {
      // A link cut while the message was in flight drops it, as a real cut would.
      if (this.isCut(env.from, env.to)) {
        this.stats.partitioned++;
        return;
      }
      this.stats.delivered++;
      this.onDeliver(env);
    });
  }

  isCut(from: RegionId, to: RegionId): boolean {
    if (this.cut.size === 0) return false;
    return (this.cut.get(from)?.get(to) ?? 0) > 0;
  }

  /** Cuts traffic from every region of `from` to every region of `to` (and back unless `oneWay`). */
  partition(from: readonly RegionId[], to: readonly RegionId[], oneWay: boolean): void {
    this.adjust(from, to, oneWay, 1);
  }

  heal(from: readonly RegionId[], to: readonly RegionId[], oneWay: boolean): void {
    this.adjust(from, to, oneWay, -1);
  }

  healAll(): void {
    this.cut.clear();
  }

  private adjust(from: readonly RegionId[], to: readonly RegionId[], oneWay: boolean, by: number): void {
    for (const a of from) {
      for (const b of to) {
        if (a === b) continue;
        this.bump(a, b, by);
        if (!oneWay) this.bump(b, a, by);
      }
    }
  }

  private bump(from: RegionId, to: RegionId, by: number): void {
    let links = this.cut.get(from);
    const n = Math.max(0, (links?.get(to) ?? 0) + by);
    if (n === 0) {
      links?.delete(to);
      if (links?.size === 0) this.cut.delete(from);
      return;
    }
    if (!links) {
      links = new Map();
      this.cut.set(from, links);
    }
    links.set(to, n);
  }
}
