/** Every checker, one per guarantee; a run is clean when none of them reports a violation. */
import { convergence } from './convergence.js';
import { counters } from './counters.js';
import { lww } from './lww.js';
import { monotonicReads } from './monotonic-reads.js';
import { pinned } from './pinned.js';
import { readValidity } from './read-validity.js';
import { readYourWrites } from './read-your-writes.js';
import { residency } from './residency.js';
import { sets } from './sets.js';
import { syncDurability } from './sync-durability.js';
import type { Checker } from './types.js';

export type { Checker } from './types.js';

export const ALL_CHECKERS: readonly Checker[] = [
  convergence,
  syncDurability,
  counters,
  sets,
  readYourWrites,
  readValidity,
  monotonicReads,
  pinned,
  lww,
  residency,
];
