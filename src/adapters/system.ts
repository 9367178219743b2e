/** The real clock, timers and randomness, for processes that run outside the simulator. */
import type { Clock, Random, TimerHandle, Timers } from '../core/ports.js';

export const systemClock: Clock = { nowMs: () => Date.now() };

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h: TimerHandle) => clearTimeout(h as NodeJS.Timeout),
};

export const systemRandom: Random = { next: () => Math.random() };
