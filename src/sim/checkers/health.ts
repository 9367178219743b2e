/**
 * Health checker: every edge's verdict on every region, held against the truth of the simulated
 * world. A false ejection is a live, reachable region taken down (or still held down long after
 * it came back); a missed one is a dead or cut-off region still held up past the detection bound.
 * Fed online by the health model (sim/health.ts) at each sample instant.
 */
import type { HealthStatus } from '../../core/health.js';
import type { RegionId } from '../../core/types.js';
import type { Violation } from '../history.js';
import { MAX_VIOLATIONS_PER_CHECKER } from './types.js';

export const FALSE_EJECTION = 'health-false-ejection';
export const MISSED_EJECTION = 'health-missed-ejection';

export interface HealthBounds {
  /** After a region becomes good again, evidence from before may still eject it for this long. */
  staleEvidenceMs: number;
  /** A good region may stay down this long after it came back (the `rise` probes, flap damping). */
  recoveryMs: number;
}

export interface PairSample {
  edge: RegionId;
  target: RegionId;
  /** The truth: the target's process is up and both directions of the link are open. */
  good: boolean;
  status: HealthStatus;
  /** Held up by the ejection cap (enough evidence, but too many regions already down). */
  held: boolean;
  /** How long a dead target may stay up at this edge: the path's detection bound. */
  detectionMs: number;
}

interface PairState {
  good: boolean;
  sinceMs: number;
  status: HealthStatus;
  reported: boolean;
  /** Last sample at which the cap held the target up: the detection bound counts from there. */
  heldAtMs: number;
}

export interface HealthCounts {
  falseEjections: number;
  missedEjections: number;
  ejections: number;
  samples: number;
}

/**
 * @example
 * const c = new HealthChecker(bounds);
 * c.sample(now, { edge: 'us-east-1', target: 'eu-west-1', good: true, status: 'up', held: false, detectionMs: 900 });
 * c.violations();
 */
export class HealthChecker {
  readonly counts: HealthCounts = { falseEjections: 0, missedEjections: 0, ejections: 0, samples: 0 };
  private readonly pairs = new Map<string, PairState>();
  private readonly found: Violation[] = [];

  constructor(private readonly bounds: HealthBounds) {}

  sample(nowMs: number, s: PairSample): void {
    this.counts.samples++;
    const key = `${s.edge}>${s.target}`;
    let p = this.pairs.get(key);
    if (!p) {
      p = {
        good: s.good,
        sinceMs: nowMs,
        status: s.status,
        reported: false,
        heldAtMs: Number.NEGATIVE_INFINITY,
      };
      this.pairs.set(key, p);
    }
    if (p.good !== s.good) {
      p.good = s.good;
      p.sinceMs = nowMs;
      p.reported = false;
    }
    if (s.held) p.heldAtMs = nowMs;
    const ejected = p.status === 'up' && s.status === 'down';
    if (ejected) this.counts.ejections++;
    if (ejected && s.good && nowMs - p.sinceMs > this.bounds.staleEvidenceMs) {
      this.counts.falseEjections++;
      this.report(
        FALSE_EJECTION,
        nowMs,
        `${s.edge} ejected ${s.target}, live and reachable for ${nowMs - p.sinceMs} ms`,
      );
    } else if (s.good && s.status === 'down' && !p.reported && nowMs - p.sinceMs > this.bounds.recoveryMs) {
      p.reported = true;
      this.counts.falseEjections++;
      this.report(
        FALSE_EJECTION,
        nowMs,
        `${s.edge} still holds ${s.target} down ${nowMs - p.sinceMs} ms after it came back`,
      );
    } else if (
      !s.good &&
      s.status === 'up' &&
      !s.held &&
      !p.reported &&
      nowMs - Math.max(p.sinceMs, p.heldAtMs) > s.detectionMs
    ) {
      p.reported = true;
      this.counts.missedEjections++;
      this.report(
        MISSED_EJECTION,
        nowMs,
        `${s.edge} still holds ${s.target} up ${nowMs - p.sinceMs} ms after it died or was cut off (bound ${Math.round(s.detectionMs)} ms)`,
      );
    }
    p.status = s.status;
  }

  private report(checker: string, atMs: number, message: string): void {
    if (this.found.filter((v) => v.checker === checker).length < MAX_VIOLATIONS_PER_CHECKER) {
      this.found.push({ checker, message, atMs });
    }
  }

  violations(): Violation[] {
    return [...this.found];
  }
}
