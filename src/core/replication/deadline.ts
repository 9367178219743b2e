/**
 * A deadline that moves often and fires rarely (a stream's silence limit, a feed's next heartbeat):
 * one timer at a time, which on firing early re-arms itself for the rest. Moving it later costs a
 * field write, not a timer, which matters when it moves on every message.
 */
import type { Clock, TimerHandle, Timers } from '../ports.js';

/**
 * @example
 *   const silence = new Deadline(clock, timers, () => session.close('silent'));
 *   silence.set(clock.nowMs() + 3000); // on every message
 *   silence.stop();                    // when the session ends
 */
export class Deadline {
  private atMs = Number.POSITIVE_INFINITY;
  private armedAtMs = Number.POSITIVE_INFINITY;
  private handle: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly timers: Timers,
    private readonly fire: () => void,
  ) {}

  /** Fires at `atMs` (by `clock`) unless moved or stopped first. */
  set(atMs: number): void {
    this.atMs = atMs;
    if (this.handle === undefined || atMs < this.armedAtMs) this.arm();
  }

  /** Nothing is due; the armed timer, if any, will find that and stay quiet. */
  clear(): void {
    this.atMs = Number.POSITIVE_INFINITY;
  }

  stop(): void {
    this.clear();
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
  }

  private arm(): void {
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.armedAtMs = this.atMs;
    this.handle = this.timers.setTimeout(() => this.onTimer(), Math.max(0, this.atMs - this.clock.nowMs()));
  }

  private onTimer(): void {
    this.handle = undefined;
    if (this.atMs === Number.POSITIVE_INFINITY) return;
    if (this.clock.nowMs() >= this.atMs) {
      this.atMs = Number.POSITIVE_INFINITY;
      this.fire();
    } else this.arm();
  }
}
