/**
 * Virtual time for saga tests and workloads: a clock and timers that advance only when asked, with
 * every pending promise settled between timer firings, so runs are deterministic and instant.
 */
import type { Clock, TimerHandle, Timers } from '../../core/ports.js';

interface Pending {
  id: number;
  atMs: number;
  fn: () => void;
}

/** Lets every queued microtask and promise continuation run (memory stores resolve in microtasks). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * @example
 * const vt = new VirtualTime();
 * vt.timers.setTimeout(() => console.log('later'), 100);
 * await vt.runFor(100); // prints 'later', vt.nowMs() advanced by 100
 */
export class VirtualTime implements Clock {
  private now: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(startMs = 1_700_000_000_000) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  readonly timers: Timers = {
    setTimeout: (fn: () => void, ms: number): TimerHandle => {
      const p: Pending = { id: ++this.seq, atMs: this.now + Math.max(0, ms), fn };
      this.pending.push(p);
      return { id: p.id };
    },
    clearTimeout: (h: TimerHandle): void => {
      const id = (h as { id: number }).id;
      this.pending = this.pending.filter((p) => p.id !== id);
    },
  };

  pendingTimers(): number {
    return this.pending.length;
  }

  /** Fires timers in time order (ties by creation) until `untilMs`, settling promises between them. */
  async runUntilTime(untilMs: number): Promise<void> {
    await flush();
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending)
        if (!next || p.atMs < next.atMs || (p.atMs === next.atMs && p.id < next.id)) next = p;
      if (!next || next.atMs > untilMs) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.now = Math.max(this.now, next.atMs);
      next.fn();
      await flush();
    }
    this.now = Math.max(this.now, untilMs);
    await flush();
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntilTime(this.now + ms);
  }

  /** Runs until `done()` holds, or throws after `maxMs` of virtual time. */
  async runUntil(done: () => boolean | Promise<boolean>, maxMs = 600_000, stepMs = 10): Promise<void> {
    const end = this.now + maxMs;
    while (!(await done())) {
      if (this.now >= end) throw new Error(`condition not reached within ${maxMs} ms of virtual time`);
      await this.runUntilTime(Math.min(end, this.now + stepMs));
    }
  }
}

/** A seeded PRNG (mulberry32): the same seed gives the same jitter and fault schedule. */
export function seededRandom(seed: number): { next(): number } {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
