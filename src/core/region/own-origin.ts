/**
 * Recovery of a region's own changes: a node opened on a wiped or older disk must not issue
 * sequence numbers its peers already hold (they would skip the new changes as duplicates), so
 * local writes wait until the listed peers have said which of our changes they hold, and until we
 * hold them again.
 */
import { MeridianError } from '../errors.js';
import type { TimerHandle, Timers } from '../ports.js';
import type { RegionId } from '../types.js';

export class OwnOriginRecovery {
  /** Peers whose view of our own origin is still unknown (undefined: none). */
  private unheard: Set<RegionId> | undefined;
  /** The highest sequence of our own origin that a peer reported holding, and which peer. */
  private peersHold = 0;
  private holder: RegionId | undefined;
  /** Whether local writes may be issued (false until the peers are heard and their changes held). */
  ready = true;
  /** Local writes that arrived while not ready, waiting (bounded) for it. */
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly region: RegionId,
    private readonly timers: Timers,
    /** The peers to hear from (RegionCoreOptions.recoverOwnOriginFrom, without this region). */
    peers: readonly RegionId[],
    private readonly waitMs: number,
  ) {
    if (peers.length > 0) {
      this.unheard = new Set(peers);
      this.ready = false;
    }
  }

  /** `peer` holds our own changes up to `seq`; `ownApplied` is the highest we hold. */
  noteHeld(peer: RegionId, seq: number, ownApplied: number): void {
    if (seq > this.peersHold) {
      this.peersHold = seq;
      this.holder = peer;
    }
    if (this.unheard?.delete(peer) && this.unheard.size === 0) this.unheard = undefined;
    this.update(ownApplied);
  }

  /** Re-derives `ready` now that we hold our own changes up to `ownApplied`. */
  update(ownApplied: number): void {
    this.ready = this.unheard === undefined && ownApplied >= this.peersHold;
    if (this.ready && this.waiters.size > 0) for (const w of [...this.waiters]) w();
  }

  /**
   * Holds a local write until the peers' views are in (milliseconds after a start, when the peers
   * are up), at most `waitMs`: a write that arrives just after start-up is not refused for it.
   */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | undefined;
      const done = () => {
        if (timer) this.timers.clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      timer = this.timers.setTimeout(done, this.waitMs);
    });
  }

  /**
   * Refuses to issue `seq` while a peer may already hold a change of ours with that sequence (our
   * disk was wiped or replaced by an older one): peers would skip the new change as a duplicate.
   */
  checkSeq(seq: number): void {
    if (this.ready && seq > this.peersHold) return;
    const waiting = this.unheard ? [...this.unheard] : [];
    throw new MeridianError(
      'unavailable',
      waiting.length > 0
        ? `${this.region} accepts writes once its peers have told it which of its own changes they hold (waiting for ${waiting.join(', ')})`
        : `${this.region} is recovering its own changes from its peers (holds ${seq - 1}, peers hold ${this.peersHold})`,
      { replayRegion: this.holder ?? waiting[0] ?? this.region },
    );
  }

  /** For stats: set while local writes are refused. */
  status(): { waitingFor: RegionId[]; peersHold: number } | undefined {
    return this.ready ? undefined : { waitingFor: [...(this.unheard ?? [])], peersHold: this.peersHold };
  }
}
