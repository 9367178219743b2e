/** The simulator's seeded numbers are the core's one PRNG (src/core/random.ts), re-exported for sim/. */
export { hash32, Prng } from '../core/random.js';
