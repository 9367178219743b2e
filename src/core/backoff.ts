/**
 * The one backoff: exponential with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter", 2015). Replication reconnects and saga step retries both wait with it, in the node and
 * in the simulator; the jitter is drawn from the core's Random, so a seeded run replays it.
 */
import type { Random } from './ports.js';

export interface BackoffPolicy {
  /** The ceiling of the first delay. */
  baseMs: number;
  /** No delay's ceiling exceeds this. */
  maxMs: number;
}

/** Past this many doublings every ceiling is maxMs anyway; the cap keeps 2^n finite. */
const MAX_DOUBLINGS = 30;

/** The ceiling of the `attempt`-th delay (attempts count from 1): min(maxMs, baseMs * 2^(attempt-1)). */
export function backoffCeilingMs(policy: BackoffPolicy, attempt: number): number {
  const doublings = Math.min(MAX_DOUBLINGS, Math.max(0, Math.floor(attempt) - 1));
  return Math.min(policy.maxMs, policy.baseMs * 2 ** doublings);
}

/**
 * The delay before retry number `attempt` (from 1): uniform in whole milliseconds over
 * [0, ceiling). Full jitter spreads many callers that failed together (every saga of a partitioned
 * region, every peer of a restarted node) better than equal or decorrelated jitter.
 *
 * @example
 * backoffMs({ baseMs: 100, maxMs: 5000 }, 3, random); // 0..399
 */
export function backoffMs(policy: BackoffPolicy, attempt: number, random: Random): number {
  return Math.floor(random.next() * backoffCeilingMs(policy, attempt));
}

/**
 * The attempts of one connection or loop: each `next()` is the following attempt's delay, and
 * `reset()` starts over after a success.
 *
 * @example
 * const b = new Backoff({ baseMs: 100, maxMs: 5000 }, random);
 * timers.setTimeout(reconnect, b.next()); // 0..99, then 0..199, ... capped at 5000
 * b.reset();                              // after a connection that worked
 */
export class Backoff {
  private attempts = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: Random,
  ) {}

  /** How many delays were drawn since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  next(): number {
    this.attempts = Math.min(this.attempts + 1, MAX_DOUBLINGS + 1);
    return backoffMs(this.policy, this.attempts, this.random);
  }

  reset(): void {
    this.attempts = 0;
  }
}
