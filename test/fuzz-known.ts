/**
 * Findings of the fuzzing suite that are known and open in code another engineer is changing: each
 * has a reproducer in test/fuzz-findings.test.ts (marked todo). A finding matched here is counted
 * and printed, not failed; delete an entry when its fix lands, and the suite guards it again.
 */
import type { Finding } from './fuzz-support.js';

interface Known {
  /** What the bug is, where a reader can find it. */
  what: string;
  matches(f: Finding): boolean;
}

const KNOWN: Known[] = [];

/** The known finding `f` is an instance of, if any. */
export function knownFinding(f: Finding): string | undefined {
  return KNOWN.find((k) => k.matches(f))?.what;
}
