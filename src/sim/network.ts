/**
 * The simulated WAN between regions: one-way delay = RTT/2 from the region table, with jitter,
 * loss, duplication, reordering, delay spikes and partitions (symmetric or one-way). Every message
 * passes one inspection hook before it leaves, so checkers can see all traffic.
 */
import type { AckAnswer, AckBody, StreamMessage, StreamRequest } from '../core/replication/protocol.js';
import type { RegionId } from '../core/types.js';
import type { Prng } from './random.js';
import type { VirtualTime } from './time.js';

/**
 * One message of a replication stream in flight: the core's stream message as it is, with the
 * stream it belongs to and its position in it (`n`, from 0), as TCP numbers its segments.
 */
export type StreamSegment = {
  [K in StreamMessage['t']]: Extract<StreamMessage, { t: K }> & { type: K; stream: number; n: number };
}[StreamMessage['t']];

/**
 * Region-to-region messages: the replication driver's (src/core/replication) streams and
 * acknowledgements as the simulator's transport (replication-transport.ts) carries them.
 */
export type Message =
  /** A receiver opens a stream from the peer (the node's GET /internal/v1/stream). */
  | { type: 'open'; stream: number; request: StreamRequest }
  | StreamSegment
  /** Either end ends a stream (FIN or RST; also sent for a crashed process by its host). */
  | { type: 'close'; stream: number; opener: RegionId; reason: string }
  | { type: 'ack'; reqId: number; body: AckBody }
  | { type: 'ack-answer'; reqId: number; answer: AckAnswer };

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
  /** Messages delayed by a delay spike at either end. */
  spiked: number;
}

/**
 * @example
 * const net = new Network(time, rng.fork('net'), (a, b) => table.oneWayMs(a, b), faults);
 * net.onDeliver = (env) => regions.get(env.to)!.receive(env);
 * net.send('us-east-1', 'eu-west-1', { type: 'close', stream: 1, opener: 'us-east-1', reason: 'done' });
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
    spiked: 0,
  };
  /**
   * Directed links cut by partitions (from -> to -> how many partitions cut it; they may overlap).
   * Two levels so that checking a link, done for every message twice, builds no key string.
   */
  private readonly cut = new Map<RegionId, Map<RegionId, number>>();
  /** Extra one-way delay of every message to or from a region during its delay spikes (summed). */
  private readonly spikeMs = new Map<RegionId, number>();

  constructor(
    private readonly time: VirtualTime,
    private readonly rng: Prng,
    private readonly oneWayMs: (a: RegionId, b: RegionId) => number,
    public faults: LinkFaults,
  ) {}

  /**
   * Sends one message; false when it was lost or cut at once (a sender modelling TCP retransmits
   * then). A message cut while in flight is dropped later, unseen by the sender.
   */
  send(from: RegionId, to: RegionId, msg: Message): boolean {
    const env: Envelope = { from, to, msg };
    this.stats.sent++;
    this.onSend(env);
    if (this.isCut(from, to)) {
      this.stats.partitioned++;
      return false;
    }
    if (this.rng.chance(this.faults.lossRate)) {
      this.stats.lost++;
      return false;
    }
    this.schedule(env);
    if (this.rng.chance(this.faults.dupRate)) {
      this.stats.duplicated++;
      this.schedule(env);
    }
    return true;
  }

  private schedule(env: Envelope): void {
    const base = this.oneWayMs(env.from, env.to);
    const f = this.faults;
    let delay = base * (1 + f.jitterFrac * (2 * this.rng.next() - 1));
    if (this.rng.chance(f.reorderRate)) {
      this.stats.reordered++;
      delay += this.rng.next() * f.reorderMaxMs;
    }
    if (this.spikeMs.size > 0) {
      const extra = (this.spikeMs.get(env.from) ?? 0) + (this.spikeMs.get(env.to) ?? 0);
      if (extra > 0) {
        this.stats.spiked++;
        delay += extra * (0.5 + this.rng.next());
      }
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
    this.spikeMs.clear();
  }

  /** Every message to or from `region` takes about `extraMs` longer (half to 1.5 times), until `unspike`. */
  spike(region: RegionId, extraMs: number): void {
    this.spikeMs.set(region, (this.spikeMs.get(region) ?? 0) + extraMs);
  }

  unspike(region: RegionId, extraMs: number): void {
    const left = (this.spikeMs.get(region) ?? 0) - extraMs;
    if (left > 0) this.spikeMs.set(region, left);
    else this.spikeMs.delete(region);
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
