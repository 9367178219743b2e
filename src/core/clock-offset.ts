/**
 * Clock offset from peers, and CockroachDB's rule on it: a node whose physical clock is more than
 * `maxOffsetMs` away from a majority of its cluster must stop issuing timestamps (accepting writes)
 * until it is back within bounds, since a clock that runs ahead wins every last-writer-wins conflict
 * and one that runs behind loses them, both silently. Deterministic: the caller hands in the clock
 * and each peer's clock reading as it arrives; measuring is the transport's job.
 */
import type { Clock } from './ports.js';
import type { RegionId } from './types.js';

export interface ClockOffsetOptions {
  /** Peers further away than this are "off" (the HLC's bound, `maxOffsetMs`). */
  maxOffsetMs: number;
  /** A peer's readings older than this no longer count: the peer is not reachable now. */
  staleAfterMs: number;
  /**
   * Readings kept per peer (default 8): the estimate is the one of them that travelled fastest, so
   * a clock that changes shows within this many readings (heartbeats, or batches of changes).
   */
  samplesPerPeer?: number;
}

/** One peer's estimated offset: its clock minus ours, in milliseconds (positive: it is ahead of us). */
export interface PeerOffset {
  peer: RegionId;
  offsetMs: number;
}

export type ClockVerdict =
  | { state: 'ok' }
  | {
      state: 'beyond';
      /** How far our clock is ahead of the disagreeing peers (the median; negative: behind). */
      aheadMs: number;
      /** The peers whose clocks disagree with ours, which agree among themselves: where to replay. */
      peers: RegionId[];
    };

/**
 * The rule on a set of fresh estimates: our clock is beyond when the peers more than `maxOffsetMs`
 * away from it form a majority of the group made of us and every reachable peer. Counting
 * ourselves means a single disagreeing peer is never enough (in two regions nobody can tell which
 * clock is wrong, so neither stops), and a partition that leaves us with few peers does not stop us.
 */
export function clockVerdict(offsets: readonly PeerOffset[], maxOffsetMs: number): ClockVerdict {
  const off = offsets.filter((o) => Math.abs(o.offsetMs) > maxOffsetMs);
  if (2 * off.length <= offsets.length + 1) return { state: 'ok' };
  const sorted = off.map((o) => o.offsetMs).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { state: 'beyond', aheadMs: -median, peers: off.map((o) => o.peer).sort() };
}

/**
 * The rule over time: a verdict changes only on evidence. Beyond is entered as `clockVerdict` says;
 * it is left only when the peers whose readings are fresh and within bounds form, with us, a
 * majority of the whole cluster (`clusterSize` regions, us included). Peers going silent (a
 * partition, a reconnecting stream) are no evidence that the clock is back.
 */
export function nextClockVerdict(
  previous: ClockVerdict,
  offsets: readonly PeerOffset[],
  maxOffsetMs: number,
  clusterSize: number,
): ClockVerdict {
  const v = clockVerdict(offsets, maxOffsetMs);
  if (v.state === 'beyond' || previous.state === 'ok') return v;
  const within = offsets.filter((o) => Math.abs(o.offsetMs) <= maxOffsetMs).length;
  return 2 * (within + 1) > clusterSize ? v : previous;
}

interface Reading {
  /** Peer clock minus our clock when the reading arrived: the offset minus the one-way delay. */
  sampleMs: number;
  atMs: number;
}

/**
 * Keeps each peer's recent clock readings. A reading taken on arrival is late by the one-way
 * network delay, so `peer - us` is underestimated by that delay; the estimate is the greatest
 * recent sample (the reading that waited least, as NTP's minimum-delay filter does). With
 * symmetric paths this errs by at most the fastest one-way delay seen, which is far below the
 * default 500 ms bound on the lab's WAN (25-110 ms).
 *
 * @example
 * const offsets = new ClockOffsets(clock, { maxOffsetMs: 500, staleAfterMs: 3000 });
 * offsets.observe('eu-west-1', peerWallMs); // on each heartbeat or batch from the peer
 * if (offsets.verdict().state === 'beyond') refuseWrites();
 */
export class ClockOffsets {
  private readonly readings = new Map<RegionId, Reading[]>();
  private readonly samplesPerPeer: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: ClockOffsetOptions,
  ) {
    this.samplesPerPeer = options.samplesPerPeer ?? 8;
  }

  /** A peer's physical clock read `peerWallMs` when it sent what just arrived. */
  observe(peer: RegionId, peerWallMs: number): void {
    if (!Number.isFinite(peerWallMs)) return;
    const nowMs = this.clock.nowMs();
    let list = this.readings.get(peer);
    if (!list) {
      list = [];
      this.readings.set(peer, list);
    }
    list.push({ sampleMs: peerWallMs - nowMs, atMs: nowMs });
    if (list.length > this.samplesPerPeer) list.shift();
  }

  /** The estimate for every peer with a fresh reading, by peer id. */
  offsets(): PeerOffset[] {
    const nowMs = this.clock.nowMs();
    const out: PeerOffset[] = [];
    for (const [peer, list] of this.readings) {
      let best: number | undefined;
      for (const r of list) {
        // A reading from the future of our own clock (ours stepped back) is as stale as an old one.
        const ageMs = nowMs - r.atMs;
        if (ageMs < 0 || ageMs > this.options.staleAfterMs) continue;
        if (best === undefined || r.sampleMs > best) best = r.sampleMs;
      }
      if (best !== undefined) out.push({ peer, offsetMs: best });
    }
    return out.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  verdict(): ClockVerdict {
    return clockVerdict(this.offsets(), this.options.maxOffsetMs);
  }
}
