/**
 * What a region waits on: reads waiting for a version to be applied here, and sync writes waiting
 * for peers' acknowledgements (which this module also records: a peer's acknowledged version).
 */
import type { TimerHandle, Timers } from '../ports.js';
import type { RegionId } from '../types.js';
import { dominates, joinVersions, type VersionVector } from '../version.js';

interface VersionWaiter {
  want: VersionVector;
  done(ok: boolean): void;
}

/** Reads waiting for a version (Meridian-Min-Version) to be applied. */
export class VersionWaiters {
  private waiters: VersionWaiter[] = [];

  constructor(private readonly timers: Timers) {}

  /** Resolves true once `wake` sees `want` applied, false after `maxWaitMs`. */
  wait(want: VersionVector, maxWaitMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined;
      const w: VersionWaiter = {
        want,
        done: (v) => {
          if (timer) this.timers.clearTimeout(timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(v);
        },
      };
      this.waiters.push(w);
      timer = this.timers.setTimeout(() => w.done(false), Math.max(0, maxWaitMs));
    });
  }

  /** Answers the waiters that `applied` satisfies. */
  wake(applied: VersionVector): void {
    // Runs on every commit while reads wait behind a partition: find the ready ones without copying.
    let ready: VersionWaiter[] | undefined;
    for (const w of this.waiters) {
      if (dominates(applied, w.want)) {
        ready ??= [];
        ready.push(w);
      }
    }
    if (ready) for (const w of ready) w.done(true);
  }
}

interface AckWaiter {
  seq: number;
  needed: number;
  peers: readonly RegionId[];
  done(ok: boolean): void;
}

/** Peers' acknowledged versions, and the sync writes waiting for enough of them. */
export class PeerAcks {
  private readonly acks = new Map<RegionId, VersionVector>();
  private waiters: AckWaiter[] = [];

  constructor(
    private readonly region: RegionId,
    private readonly timers: Timers,
  ) {}

  /** What `peer` has acknowledged (joined over its acknowledgements); undefined: nothing yet. */
  of(peer: RegionId): VersionVector | undefined {
    return this.acks.get(peer);
  }

  entries(): IterableIterator<[RegionId, VersionVector]> {
    return this.acks.entries();
  }

  /** Records an acknowledgement; `wake` then answers the waiters it satisfies. */
  record(peer: RegionId, applied: VersionVector): void {
    const before = this.acks.get(peer);
    this.acks.set(peer, before ? joinVersions(before, applied) : { ...applied });
  }

  /**
   * Resolves true once `needed` of `peers` acknowledged our own change `seq`, false after
   * `timeoutMs`.
   */
  waitFor(seq: number, needed: number, peers: readonly RegionId[], timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined;
      const w: AckWaiter = {
        seq,
        needed,
        peers,
        done: (ok) => {
          if (timer) this.timers.clearTimeout(timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(ok);
        },
      };
      if (this.count(w) >= needed) return resolve(true);
      this.waiters.push(w);
      timer = this.timers.setTimeout(() => w.done(false), timeoutMs);
    });
  }

  private count(w: AckWaiter): number {
    let n = 0;
    for (const p of w.peers) if ((this.acks.get(p)?.[this.region] ?? 0) >= w.seq) n++;
    return n;
  }

  /** Answers the waiters whose acknowledgements are in. */
  wake(): void {
    let ready: AckWaiter[] | undefined;
    for (const w of this.waiters) {
      if (this.count(w) >= w.needed) {
        ready ??= [];
        ready.push(w);
      }
    }
    if (ready) for (const w of ready) w.done(true);
  }
}
