/**
 * Clock safety: peers' clock readings bound our clock's offset (clock-offset.ts); while our clock
 * is beyond `maxOffsetMs` from a majority of peers, local writes are refused; after opening (on a
 * node) local writes wait until every peer's clock has been read once.
 */
import { ClockOffsets, type ClockVerdict, nextClockVerdict, type PeerOffset } from '../clock-offset.js';
import { holders } from '../collection.js';
import { MeridianError } from '../errors.js';
import { nearestRegion } from '../geo.js';
import type { Clock, TimerHandle, Timers } from '../ports.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../types.js';
import type { RegionEvent } from './types.js';

/** How often the clock rule is re-derived without a new reading (peers' readings go stale). */
const CLOCK_RECHECK_MS = 250;

export interface ClockSafetyOptions {
  region: RegionId;
  regions: readonly RegionInfo[];
  clock: Clock;
  timers: Timers;
  maxOffsetMs: number;
  peerClockStaleAfterMs: number;
  /** Wait for every peer's clock after opening (RegionCoreOptions.awaitPeerClocks). */
  awaitPeerClocks: boolean;
  /** Once replication runs, how long the peers not yet heard of may still hold writes. */
  maxWaitMs: number;
  onEvent: ((e: RegionEvent) => void) | undefined;
}

export class ClockSafety {
  private readonly o: ClockSafetyOptions;
  private readonly regionIds: RegionId[];
  private readonly offsets: ClockOffsets;
  /** Whether writes are refused because our clock is beyond `maxOffsetMs` from our peers. */
  private refusing = false;
  /** The verdict, re-derived when a reading arrives or after CLOCK_RECHECK_MS (peers going stale). */
  private verdictNow: ClockVerdict = { state: 'ok' };
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  /** Peers whose clock has not been read yet since opening (undefined: not waiting for any). */
  private unheard: Set<RegionId> | undefined;
  private waitUntilMs = 0;
  private readonly waiters = new Set<() => void>();
  private gateTimer: TimerHandle | undefined;

  constructor(o: ClockSafetyOptions) {
    this.o = o;
    this.regionIds = o.regions.map((r) => r.id);
    this.offsets = new ClockOffsets(o.clock, {
      maxOffsetMs: o.maxOffsetMs,
      staleAfterMs: o.peerClockStaleAfterMs,
    });
    const peers = this.regionIds.filter((r) => r !== o.region);
    if (o.awaitPeerClocks && peers.length > 0) {
      this.unheard = new Set(peers);
      this.waitUntilMs = o.clock.nowMs() + o.peerClockStaleAfterMs;
    }
  }

  /** Whether local writes must still `waitForPeers` (some peer's clock not read since opening). */
  get waiting(): boolean {
    return this.unheard !== undefined;
  }

  /** A one-way reading (a stream message): bounds the peer's offset from below only. */
  observe(peer: RegionId, peerWallMs: number): void {
    if (peer === this.o.region || !this.regionIds.includes(peer)) return;
    this.offsets.observe(peer, peerWallMs);
    this.checkedAtMs = Number.NEGATIVE_INFINITY;
    this.verdict();
  }

  /** A round trip's reading: bounds the peer's offset from both sides. */
  observeRoundTrip(peer: RegionId, sentAtMs: number, peerWallMs: number): void {
    if (peer === this.o.region || !this.regionIds.includes(peer)) return;
    this.offsets.observeRoundTrip(peer, sentAtMs, peerWallMs);
    this.checkedAtMs = Number.NEGATIVE_INFINITY;
    this.verdict();
    // Only a bounded interval can show our clock ahead: the start-up wait is for these.
    if (this.offsets.bounded(peer)) this.heardOf(peer);
  }

  /** No reading will come from `peer` soon (its link failed): writes stop waiting for it. */
  heardOf(peer: RegionId): void {
    const unheard = this.unheard;
    if (!unheard?.delete(peer)) return;
    if (unheard.size === 0) {
      this.openGate();
      return;
    }
    // Replication is running: the others get a request's wait from now, not from opening.
    const untilMs = this.o.clock.nowMs() + this.o.maxWaitMs;
    if (untilMs < this.waitUntilMs) {
      this.waitUntilMs = untilMs;
      if (this.gateTimer) this.armGate();
    }
  }

  /** Holds a local write until every peer's clock has been read once, or the wait is over. */
  waitForPeers(): Promise<void> {
    if (this.waitUntilMs <= this.o.clock.nowMs()) {
      this.openGate();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiters.add(resolve);
      if (!this.gateTimer) this.armGate();
    });
  }

  private armGate(): void {
    if (this.gateTimer) this.o.timers.clearTimeout(this.gateTimer);
    const leftMs = Math.max(0, this.waitUntilMs - this.o.clock.nowMs());
    this.gateTimer = this.o.timers.setTimeout(() => {
      this.gateTimer = undefined;
      this.openGate();
    }, leftMs);
  }

  private openGate(): void {
    if (this.gateTimer) this.o.timers.clearTimeout(this.gateTimer);
    this.gateTimer = undefined;
    this.unheard = undefined;
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiters) resolve();
  }

  /** Each reachable peer's clock minus ours, as bounded by its recent readings. */
  peerOffsets(): PeerOffset[] {
    return this.offsets.offsets();
  }

  /** The rule applied now; reports entering and leaving the refusing state as an event. */
  verdict(): ClockVerdict {
    const nowMs = this.o.clock.nowMs();
    if (nowMs - this.checkedAtMs < CLOCK_RECHECK_MS && nowMs >= this.checkedAtMs) {
      return this.verdictNow;
    }
    const v = nextClockVerdict(
      this.verdictNow,
      this.offsets.offsets(),
      this.o.maxOffsetMs,
      this.regionIds.length,
    );
    this.verdictNow = v;
    this.checkedAtMs = nowMs;
    const refusing = v.state === 'beyond';
    if (refusing !== this.refusing) {
      this.refusing = refusing;
      this.o.onEvent?.({
        type: 'clock-unsafe',
        refusing,
        aheadMs: v.state === 'beyond' ? v.aheadMs : 0,
        peers: v.state === 'beyond' ? v.peers : [],
      });
    }
    return v;
  }

  /**
   * CockroachDB's rule: while our clock is beyond `maxOffsetMs` from a majority of our peers, no
   * write may carry its timestamps (it would win, or lose, every last-writer-wins conflict
   * wrongly). 503, replayed to the nearest peer that holds the collection and whose clock agrees
   * with the majority.
   */
  refuseIfUnsafe(spec: CollectionSpec | undefined): void {
    if (!this.refusing && this.checkedAtMs === Number.NEGATIVE_INFINITY) return;
    const v = this.verdict();
    if (v.state === 'ok') return;
    const { region, regions, maxOffsetMs } = this.o;
    const allowed = spec ? holders(spec, this.regionIds) : this.regionIds;
    const here = regions.find((r) => r.id === region)!;
    const healthy = regions.filter((r) => v.peers.includes(r.id) && allowed.includes(r.id));
    const to = nearestRegion(here, healthy)?.id;
    const by = Math.round(Math.abs(v.aheadMs));
    throw new MeridianError(
      'clock_skew',
      `${region}'s clock is ${by} ms ${v.aheadMs >= 0 ? 'ahead of' : 'behind'} ${v.peers.join(', ')} (more than ${maxOffsetMs} ms): it accepts no writes until its clock is back within bounds`,
      to ? { replayRegion: to } : {},
    );
  }
}
