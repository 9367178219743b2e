/** The real clock, timers and randomness, for processes that run outside the simulator. */
import { randomInt } from 'node:crypto';
import type { Clock, Random, TimerHandle, Timers } from '../core/ports.js';
import { Prng } from '../core/random.js';

export const systemClock: Clock = { nowMs: () => Date.now() };

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h: TimerHandle) => clearTimeout(h as NodeJS.Timeout),
};

/** The core's one PRNG, as in the simulator, seeded once per process from the OS. */
export const systemRandom: Random = new Prng(randomInt(2 ** 32));
