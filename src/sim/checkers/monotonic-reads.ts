/** Monotonic reads: a session carrying its version token never reads older state than it read before. */
import type { History, Violation } from '../history.js';
import { sessionAnomalies } from './sessions.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER } from './types.js';

export const monotonicReads: Checker = {
  name: 'monotonic-reads',
  guarantee: 'a session carrying the version token never reads a state older than one it has read',
  check(h: History): Violation[] {
    return sessionAnomalies(h, true)
      .filter((a) => a.kind === 'monotonic-reads')
      .slice(0, MAX_VIOLATIONS_PER_CHECKER)
      .map((a) => ({
        checker: 'monotonic-reads',
        message: `session ${a.read.session}: op #${a.read.id} at ${a.read.region} on ${a.read.collection}/${a.read.key}: ${a.detail}`,
        atMs: a.read.endAtMs,
        collection: a.read.collection,
        key: a.read.key,
        ops: [a.before.id, a.read.id],
      }));
  },
};
