/**
 * The small interfaces through which the core receives time and timers. The core never reads the
 * clock or schedules work itself, so the simulator can drive it with virtual time.
 */

/** Physical (wall) time in milliseconds since the epoch, as this region's clock reads it. */
export interface Clock {
  nowMs(): number;
}

export type TimerHandle = { readonly id: number } | object;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** A source of uniform numbers in [0, 1); real code passes Math.random, the simulator a seeded PRNG. */
export interface Random {
  next(): number;
}
