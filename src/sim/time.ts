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

interface SimEvent {
  atMs: number;
  seq: number;
  fn: () => void;
  owner: Owner | undefined;
  cancelled: boolean;
}

const ALWAYS: Owner = { alive: true };
/** Awaiting an already-resolved native promise costs one microtask turn and allocates no new promise. */
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
  private heap: SimEvent[] = [];
  private seq = 0;
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
    const e: SimEvent = { atMs, seq: this.seq++, fn, owner, cancelled: false };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
    return e;
  }

  private pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(h[r]!, h[l]!) ? r : l;
      if (less(last, h[c]!)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }

  cancel(e: SimEvent): void {
    e.cancelled = true;
  }

  /** When the next event is due, or undefined when nothing is scheduled. */
  nextAtMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  /**
   * Runs every event due up to and including `endMs`, then leaves time at `endMs`. After the
   * events of each instant it yields to the host event loop once, which runs every pending
   * promise continuation (all simulated I/O is promise-based, so nothing else can be pending).
   */
  async runUntil(endMs: number, stop?: () => boolean): Promise<void> {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.atMs > endMs) break;
      this.nowMs = top.atMs;
      while (this.heap[0] !== undefined && this.heap[0].atMs === this.nowMs) {
        const e = this.pop()!;
        if (e.cancelled || (e.owner !== undefined && !e.owner.alive)) continue;
        this.eventsRun++;
        e.fn();
      }
      // Microtask turns until QUIET_TURNS pass with no observable activity (bounded). Inline, not
      // a helper: one more async call per instant is one more promise per simulated millisecond.
      let quiet = 0;
      for (let i = 0; i < MAX_TURNS && quiet < QUIET_TURNS; i++) {
        const before = this.activity;
        await RESOLVED;
        quiet = this.activity === before ? quiet + 1 : 0;
      }
      if (this.heap.length === 0) await settle();
      if (stop?.()) return;
    }
    await settle();
    if (endMs > this.nowMs) this.nowMs = endMs;
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

function less(a: SimEvent, b: SimEvent): boolean {
  return a.atMs !== b.atMs ? a.atMs < b.atMs : a.seq < b.seq;
}

/** Resolves after every queued promise continuation has run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export { ALWAYS };
