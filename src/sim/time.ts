/**
 * Virtual time: a seeded event queue. Events run in (time, insertion) order, so two events due at
 * the same millisecond always run in the same order. Between two instants the loop lets pending
 * promise continuations run (microtask turns, never the host's macrotask queue, which would cost a
 * system call per instant): it turns until nothing observable happens for a few turns. A
 * continuation that is still pending then simply runs at a later instant, as slow code would; the
 * order stays deterministic either way, because the microtask queue is.
 */
import type { Clock, TimerHandle, Timers } from '../core/ports.js';

/** Everything scheduled by one region process; a crash marks it dead and its events are skipped. */
export interface Owner {
  alive: boolean;
}

export interface SimEvent {
  fn: () => void;
  owner: Owner | undefined;
  cancelled: boolean;
}

const ALWAYS: Owner = { alive: true };
/** Settled once: `.then` on it queues a reaction at once (one microtask turn later). */
const RESOLVED: Promise<void> = Promise.resolve();
const QUIET_TURNS = 4;
const MAX_TURNS = 100_000;

/** The simulated epoch: virtual time 0 is this wall-clock instant (2023-11-14), so HLCs look real. */
export const EPOCH_MS = 1_700_000_000_000;

/**
 * @example
 * const time = new VirtualTime();
 * time.at(5, () => console.log('five ms in'));
 * await time.runUntil(10);
 */
export class VirtualTime {
  /** Milliseconds since the start of the run (integers). */
  nowMs = 0;
  /**
   * The queue: one bucket of events per due millisecond, in insertion order, and a min-heap of the
   * due times that have a bucket. Time is whole milliseconds and about two events share one, so
   * ordering by time alone (numbers, no tie-break) and appending within an instant does less work
   * than a heap of events ordered by (time, insertion).
   */
  private readonly buckets = new Map<number, SimEvent[]>();
  private readonly times: number[] = [];
  eventsRun = 0;
  /** Bumped by anything observable (scheduling, clock reads, storage calls); see `turn`. */
  activity = 0;

  /** Schedules `fn` after `delayMs` (rounded up to a whole millisecond, at least 0). */
  after(delayMs: number, fn: () => void, owner?: Owner): SimEvent {
    const d = delayMs > 0 ? Math.ceil(delayMs) : 0;
    return this.push(this.nowMs + d, fn, owner);
  }

  at(atMs: number, fn: () => void, owner?: Owner): SimEvent {
    return this.push(Math.max(this.nowMs, Math.ceil(atMs)), fn, owner);
  }

  private push(atMs: number, fn: () => void, owner: Owner | undefined): SimEvent {
    this.activity++;
    const e: SimEvent = { fn, owner, cancelled: false };
    const bucket = this.buckets.get(atMs);
    if (bucket) {
      bucket.push(e);
      return e;
    }
    this.buckets.set(atMs, [e]);
    const h = this.times;
    let i = h.length;
    h.push(atMs);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! < atMs) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = atMs;
    return e;
  }

  /** Removes the earliest due time from the heap. */
  private popTime(): void {
    const h = this.times;
    const last = h.pop();
    const n = h.length;
    if (last === undefined || n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]! < h[l]! ? r : l;
      if (last < h[c]!) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }

  cancel(e: SimEvent): void {
    e.cancelled = true;
  }

  /** When the next event is due, or undefined when nothing is scheduled. */
  nextAtMs(): number | undefined {
    return this.times[0];
  }

  /**
   * Runs every event due up to and including `endMs`, then leaves time at `endMs`. After the
   * events of each instant it turns the microtask queue until nothing observable happens for
   * QUIET_TURNS turns (all simulated I/O is promise-based, so nothing else can be pending).
   *
   * A callback loop rather than an async function: `RESOLVED.then(turn)` enqueues its turn exactly
   * where `await RESOLVED` would (the end of the same FIFO queue), so continuations run in the same
   * order, at half the allocation and time per turn (there are several turns per simulated instant,
   * about 330,000 per simulated minute). Not `queueMicrotask`: Node wraps each callback in an
   * async resource, which costs more than the await.
   */
  runUntil(endMs: number, stop?: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let quiet = 0;
      let turns = 0;
      let before = 0;
      const finish = (): void => {
        if (endMs > this.nowMs) this.nowMs = endMs;
        resolve();
      };
      const instant = (): void => {
        const atMs = this.times[0];
        if (atMs === undefined || atMs > endMs) {
          setImmediate(finish);
          return;
        }
        this.nowMs = atMs;
        // Events scheduled for this instant while it runs join its bucket and run in this loop.
        const bucket = this.buckets.get(atMs)!;
        try {
          for (let i = 0; i < bucket.length; i++) {
            const e = bucket[i]!;
            if (e.cancelled || (e.owner !== undefined && !e.owner.alive)) continue;
            this.eventsRun++;
            e.fn();
          }
        } catch (error) {
          reject(error);
          return;
        }
        this.buckets.delete(atMs);
        this.popTime();
        quiet = 0;
        turns = 0;
        before = this.activity;
        void RESOLVED.then(turn);
      };
      const afterTurns = (): void => {
        try {
          if (stop?.()) {
            resolve();
            return;
          }
        } catch (error) {
          reject(error);
          return;
        }
        instant();
      };
      const turn = (): void => {
        quiet = this.activity === before ? quiet + 1 : 0;
        turns++;
        if (turns < MAX_TURNS && quiet < QUIET_TURNS) {
          before = this.activity;
          void RESOLVED.then(turn);
        } else if (this.times.length === 0) setImmediate(afterTurns);
        else afterTurns();
      };
      instant();
    });
  }

  /** Runs every event due in the next `ms` milliseconds. */
  runFor(ms: number): Promise<void> {
    return this.runUntil(this.nowMs + ms);
  }

  /**
   * Runs time forward `stepMs` at a time until `done()` holds (checked between steps, so it may
   * read simulated storage), or throws once `maxMs` of virtual time passed without it.
   *
   * @example
   * await time.waitFor(async () => (await engine.get('s1'))?.status === 'completed');
   */
  async waitFor(done: () => boolean | Promise<boolean>, maxMs = 600_000, stepMs = 10): Promise<void> {
    const endMs = this.nowMs + maxMs;
    while (!(await done())) {
      if (this.nowMs >= endMs) throw new Error(`condition not reached within ${maxMs} ms of virtual time`);
      await this.runUntil(Math.min(endMs, this.nowMs + stepMs));
    }
  }

  /** A Clock reading virtual time plus a per-region skew (which faults may change at any time). */
  clock(skew: { ms: number }): Clock {
    return {
      nowMs: () => {
        this.activity++;
        return EPOCH_MS + this.nowMs + skew.ms;
      },
    };
  }

  /** Timers for one region process: they die with it. */
  timers(owner: Owner): Timers {
    return {
      setTimeout: (fn: () => void, ms: number): TimerHandle => this.after(ms, fn, owner),
      clearTimeout: (h: TimerHandle): void => {
        (h as SimEvent).cancelled = true;
      },
    };
  }
}

/** Resolves after every queued promise continuation has run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export { ALWAYS };
