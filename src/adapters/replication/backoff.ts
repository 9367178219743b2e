/** Reconnection delays: exponential with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  random?: () => number;
}

/**
 * @example
 *   const b = new Backoff({ minMs: 100, maxMs: 5000 });
 *   await sleep(b.next()); // 0..100, then 0..200, ... capped at 5000
 *   b.reset();             // after a connection that worked
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt; full jitter spreads reconnecting peers apart. */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round((this.options.random ?? Math.random)() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }
}
