/** Timers that fire only when told to: for tests that drive a RegionCore without waiting on wall time. */
import type { TimerHandle, Timers } from '../../src/core/ports.js';

/**
 * @example
 * const timers = new ManualTimers();
 * const core = await RegionCore.open({ ...options, timers });
 * timers.fireAll(); // every pending timeout, e.g. a sync write's deadline
 */
export class ManualTimers implements Timers {
  private seq = 0;
  readonly pending = new Map<number, () => void>();
  setTimeout(fn: () => void): TimerHandle {
    const id = ++this.seq;
    this.pending.set(id, fn);
    return { id };
  }
  clearTimeout(h: TimerHandle): void {
    this.pending.delete((h as { id: number }).id);
  }
  fireAll(): void {
    const fns = [...this.pending.values()];
    this.pending.clear();
    for (const f of fns) f();
  }
}
