/**
 * Clock offset from peers, and CockroachDB's rule on it: a node whose physical clock is more than
 * `maxOffsetMs` away from a majority of its cluster must stop issuing timestamps (accepting writes)
 * until it is back within bounds, since a clock that runs ahead wins every last-writer-wins conflict
 * and one that runs behind loses them, both silently. Deterministic: the caller hands in the clock
 * and each peer's clock reading as it arrives; measuring is the transport's job.
 *
 * A reading cannot measure an offset, only bound it: a message is late by a one-way delay nobody
 * knows, so its clock reading says the sender is *at least* `peerWall - arrival` ahead of us
 * (delay >= 0), and a request answered with the peer's clock bounds the offset from both sides, as
 * NTP does: `[peerWall - answeredAt, peerWall - sentAt]`. A slow network widens the interval; it
 * can never move it off the true offset. So a node is judged beyond a peer only when the interval
 * proves it, and a slow WAN, however slow or lopsided, never makes a node refuse writes.
 */
import type { Clock } from './ports.js';
import type { RegionId } from './types.js';

export interface ClockOffsetOptions {
  /** Peers further away than this are "off" (the HLC's bound, `maxOffsetMs`). */
  maxOffsetMs: number;
  /** A peer's readings older than this no longer count: the peer is not reachable now. */
  staleAfterMs: number;
  /**
   * The clock's resolution (default 1 ms: `Date.now()` truncates to whole milliseconds, so two
   * readings of it can differ from the true interval by up to this much); each bound is widened by it.
   */
  resolutionMs?: number;
}

/**
 * What the recent readings prove about a peer's clock minus ours, in milliseconds (positive: it
 * is ahead of us): `lowMs <= offset <= highMs`, either side infinite when unbounded.
 */
export interface PeerOffset {
  peer: RegionId;
  lowMs: number;
  highMs: number;
  /**
   * One number for dashboards: the middle of the interval when both sides are bounded, else its
   * bounded side. The rule never uses it.
   */
  offsetMs: number;
}

export type ClockVerdict =
  | { state: 'ok' }
  | {
      state: 'beyond';
      /**
       * How far our clock is, at least, ahead of the disagreeing peers (the median of what each
       * interval proves; negative: behind).
       */
      aheadMs: number;
      /** The peers whose clocks are proven beyond ours, which agree among themselves: where to replay. */
      peers: RegionId[];
    };

/** How far our clock is proven ahead of the peer's (positive), or behind (negative); 0: not proven. */
export function provenAheadMs(o: PeerOffset, maxOffsetMs: number): number {
  if (o.highMs < -maxOffsetMs) return -o.highMs;
  if (o.lowMs > maxOffsetMs) return -o.lowMs;
  return 0;
}

/**
 * The rule on a set of fresh intervals: our clock is beyond when the peers proven more than
 * `maxOffsetMs` away from it form a majority of the group made of us and every reachable peer. An
 * interval that contains offsets within bounds is no evidence either way. Counting ourselves means a
 * single disagreeing peer is never enough (in two regions nobody can tell which clock is wrong, so
 * neither stops), and a partition that leaves us with few peers does not stop us.
 */
export function clockVerdict(offsets: readonly PeerOffset[], maxOffsetMs: number): ClockVerdict {
  const off: { peer: RegionId; aheadMs: number }[] = [];
  for (const o of offsets) {
    const aheadMs = provenAheadMs(o, maxOffsetMs);
    if (aheadMs !== 0) off.push({ peer: o.peer, aheadMs });
  }
  if (2 * off.length <= offsets.length + 1) return { state: 'ok' };
  const sorted = off.map((o) => o.aheadMs).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { state: 'beyond', aheadMs: median, peers: off.map((o) => o.peer).sort() };
}

/**
 * The rule over time: a verdict changes only on evidence. Beyond is entered as `clockVerdict` says;
 * it is left only when the peers with fresh readings that do not prove us beyond form, with us, a
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
  const within = offsets.filter((o) => provenAheadMs(o, maxOffsetMs) === 0).length;
  return 2 * (within + 1) > clusterSize ? v : previous;
}

/** The intersection of the readings that arrived within one slice of time. */
interface Slice {
  lowMs: number;
  highMs: number;
  /** When its first and its latest reading arrived, by our clock. */
  firstMs: number;
  lastMs: number;
}

/** Slices per `staleAfterMs`: memory per peer stays bounded however many messages arrive. */
const SLICES = 8;

/**
 * Keeps, per peer, the interval its recent readings prove. Readings are intersected (each one holds
 * the true offset, so their intersection does too, and it is as tight as the fastest of them: NTP's
 * minimum-delay filter), in slices of `staleAfterMs / 8` that age out whole.
 *
 * A clock that is stepped (set right, or skewed) makes readings from before the step lie. Readings
 * taken in our own clock's future (ours went back) are dropped; and when two readings contradict
 * each other (their intervals do not meet), a clock moved between them, and the newer one wins.
 *
 * @example
 * const offsets = new ClockOffsets(clock, { maxOffsetMs: 500, staleAfterMs: 5000 });
 * offsets.observe('eu-west-1', peerWallMs);                    // a message it sent arrived
 * offsets.observeRoundTrip('eu-west-1', sentAtMs, peerWallMs); // a request to it was answered
 * if (offsets.verdict().state === 'beyond') refuseWrites();
 */
export class ClockOffsets {
  private readonly slices = new Map<RegionId, Slice[]>();
  private readonly sliceMs: number;
  private readonly resolutionMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: ClockOffsetOptions,
  ) {
    this.sliceMs = options.staleAfterMs / SLICES;
    this.resolutionMs = options.resolutionMs ?? 1;
  }

  /**
   * A message from the peer arrived now, written when its physical clock read `peerWallMs`: the
   * peer is at least `peerWallMs - now` ahead of us.
   */
  observe(peer: RegionId, peerWallMs: number): void {
    if (!Number.isFinite(peerWallMs)) return;
    const nowMs = this.clock.nowMs();
    this.add(peer, peerWallMs - nowMs - this.resolutionMs, Number.POSITIVE_INFINITY, nowMs);
  }

  /**
   * A request we sent when our clock read `sentAtMs` was answered just now by the peer, whose clock
   * read `peerWallMs` in between: `peerWallMs - now <= offset <= peerWallMs - sentAtMs`.
   */
  observeRoundTrip(peer: RegionId, sentAtMs: number, peerWallMs: number): void {
    if (!Number.isFinite(peerWallMs) || !Number.isFinite(sentAtMs)) return;
    const nowMs = this.clock.nowMs();
    // Our clock went back while the request was out: the two readings of it do not compare.
    if (nowMs < sentAtMs) return;
    const r = this.resolutionMs;
    this.add(peer, peerWallMs - nowMs - r, peerWallMs - sentAtMs + r, nowMs);
  }

  private add(peer: RegionId, lowMs: number, highMs: number, nowMs: number): void {
    let list = this.slices.get(peer);
    if (!list) {
      list = [];
      this.slices.set(peer, list);
    }
    const last = list.at(-1);
    if (
      last &&
      nowMs >= last.lastMs &&
      nowMs - last.firstMs < this.sliceMs &&
      lowMs <= last.highMs &&
      highMs >= last.lowMs
    ) {
      last.lowMs = Math.max(last.lowMs, lowMs);
      last.highMs = Math.min(last.highMs, highMs);
      last.lastMs = nowMs;
    } else {
      // A new slice: time moved on, our clock went back, or this reading contradicts the last ones.
      list.push({ lowMs, highMs, firstMs: nowMs, lastMs: nowMs });
    }
    this.prune(list, nowMs);
  }

  /**
   * Keeps the fresh slices that agree with every newer one, newest first. Returns the interval they
   * prove together (possibly unbounded on both sides when there are none).
   */
  private prune(list: Slice[], nowMs: number): { lowMs: number; highMs: number } {
    let lowMs = Number.NEGATIVE_INFINITY;
    let highMs = Number.POSITIVE_INFINITY;
    let keepFrom = list.length;
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i]!;
      // A slice from the future of our own clock (ours stepped back) is as stale as an old one.
      if (s.lastMs > nowMs || nowMs - s.firstMs > this.options.staleAfterMs) break;
      if (s.lowMs > highMs || s.highMs < lowMs) break;
      lowMs = Math.max(lowMs, s.lowMs);
      highMs = Math.min(highMs, s.highMs);
      keepFrom = i;
    }
    if (keepFrom > 0) list.splice(0, keepFrom);
    return { lowMs, highMs };
  }

  /** What the fresh readings prove for every peer that has any, by peer id. */
  offsets(): PeerOffset[] {
    const nowMs = this.clock.nowMs();
    const out: PeerOffset[] = [];
    for (const [peer, list] of this.slices) {
      const { lowMs, highMs } = this.prune(list, nowMs);
      if (list.length === 0) {
        this.slices.delete(peer);
        continue;
      }
      const offsetMs = !Number.isFinite(lowMs)
        ? highMs
        : !Number.isFinite(highMs)
          ? lowMs
          : (lowMs + highMs) / 2;
      out.push({ peer, lowMs, highMs, offsetMs });
    }
    return out.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  /** Whether the peer's offset is bounded from both sides (a round trip with it was measured). */
  bounded(peer: RegionId): boolean {
    const o = this.offsets().find((x) => x.peer === peer);
    return o !== undefined && Number.isFinite(o.lowMs) && Number.isFinite(o.highMs);
  }

  verdict(): ClockVerdict {
    return clockVerdict(this.offsets(), this.options.maxOffsetMs);
  }
}
