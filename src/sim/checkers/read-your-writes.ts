/** Read-your-writes: a session that carries its version token reads its own acknowledged writes. */
import type { History, Violation } from '../history.js';
import { sessionAnomalies } from './sessions.js';
import { type Checker, MAX_VIOLATIONS_PER_CHECKER } from './types.js';

export const readYourWrites: Checker = {
  name: 'read-your-writes',
  guarantee: 'a session carrying the version token never reads a state older than its own acknowledged write',
  check(h: History): Violation[] {
    return sessionAnomalies(h, true)
      .filter((a) => a.kind === 'read-your-writes')
      .slice(0, MAX_VIOLATIONS_PER_CHECKER)
      .map((a) => ({
        checker: 'read-your-writes',
        message: `session ${a.read.session}: op #${a.read.id} at ${a.read.region} on ${a.read.collection}/${a.read.key}: ${a.detail}`,
        atMs: a.read.endAtMs,
        collection: a.read.collection,
        key: a.read.key,
        ops: [a.before.id, a.read.id],
      }));
  },
};
