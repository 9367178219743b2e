/** Retry policy of saga steps: how often and how long to retry (with the core's backoff), and which failures are worth retrying. */
import { backoffMs } from '../backoff.js';
import { isMeridianError } from '../errors.js';
import type { Random } from '../ports.js';

export interface RetryPolicy {
  /** Attempts of an action before its outcome is declared unknown (default 5). */
  maxAttempts: number;
  /** Attempts of a compensation before the saga is stuck (default: unbounded, "until it succeeds"). */
  maxCompensationAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Per-attempt timeout of an action or compensation. */
  stepTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  maxCompensationAttempts: Number.POSITIVE_INFINITY,
  baseDelayMs: 50,
  maxDelayMs: 5000,
  stepTimeoutMs: 5000,
};

/** The delay before a step's `attempt`-th retry: the core's one backoff (full jitter) under this policy. */
export function retryDelayMs(policy: RetryPolicy, attempt: number, random: Random): number {
  return backoffMs({ baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, attempt, random);
}

/** A step's failure with an explicit verdict; other errors are classified by retryable(). */
export class StepFailure extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'StepFailure';
  }
}

export class StepTimeout extends Error {
  constructor(ms: number) {
    super(`attempt timed out after ${ms} ms`);
    this.name = 'StepTimeout';
  }
}

/**
 * A refusal (4xx: bad input, insufficient funds, a fenced key) will be refused again, so it is
 * permanent; a timeout, a 5xx, a 409 for a key in progress or an unreachable region may succeed
 * later, and its effect may even have happened, so it is retried with the same key.
 */
export function isPermanent(e: unknown): boolean {
  if (e instanceof StepFailure) return e.permanent;
  if (isMeridianError(e)) {
    if (e.code === 'idempotency_in_progress' || e.code === 'misdirected') return false;
    return e.status >= 400 && e.status < 500;
  }
  return false;
}

export function describeError(e: unknown): string {
  if (isMeridianError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
