/**
 * Hybrid logical clock (Kulkarni et al., 2014): timestamps that follow physical time, stay
 * monotonic when the physical clock steps backwards, and order causally related events.
 */
import { MeridianError } from './errors.js';
import type { Clock } from './ports.js';

export interface Hlc {
  /** Milliseconds since the epoch: the largest physical time this timestamp has seen. */
  wallMs: number;
  /** Counter that orders events within one `wallMs`. */
  logical: number;
}

export const HLC_ZERO: Hlc = { wallMs: 0, logical: 0 };

const WALL_DIGITS = 12; // hex digits: enough until the year 10889
const LOGICAL_DIGITS = 6;
const MAX_LOGICAL = 16 ** LOGICAL_DIGITS - 1;
const ENCODED = /^[0-9a-f]{12}-[0-9a-f]{6}$/;

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wallMs !== b.wallMs ? a.wallMs - b.wallMs : a.logical - b.logical;
}

/** Fixed-width hex encoding whose string order is the time order. */
export function encodeHlc(t: Hlc): string {
  return (
    t.wallMs.toString(16).padStart(WALL_DIGITS, '0') +
    '-' +
    t.logical.toString(16).padStart(LOGICAL_DIGITS, '0')
  );
}

export function decodeHlc(s: string): Hlc {
  if (typeof s !== 'string' || !ENCODED.test(s)) {
    throw new MeridianError('bad_request', `malformed HLC timestamp: ${JSON.stringify(s)}`);
  }
  return { wallMs: Number.parseInt(s.slice(0, WALL_DIGITS), 16), logical: Number.parseInt(s.slice(13), 16) };
}

export interface HlcOptions {
  /** A remote timestamp further than this ahead of our physical clock is refused. */
  maxOffsetMs: number;
}

export class HybridClock {
  private last: Hlc = HLC_ZERO;
  /** Remote timestamps refused because they were too far ahead of the local physical clock. */
  rejectedCount = 0;

  constructor(
    private readonly clock: Clock,
    private readonly options: HlcOptions = { maxOffsetMs: 500 },
  ) {}

  /** The latest timestamp issued or observed, without advancing. */
  peek(): Hlc {
    return this.last;
  }

  /** Timestamp for a local or send event. */
  now(): Hlc {
    const pt = this.clock.nowMs();
    const next: Hlc =
      pt > this.last.wallMs
        ? { wallMs: pt, logical: 0 }
        : { wallMs: this.last.wallMs, logical: this.last.logical + 1 };
    return this.advanceTo(next);
  }

  /** A send event is a local event whose timestamp travels with the message. */
  send(): Hlc {
    return this.now();
  }

  /**
   * Merge a timestamp received from another node. Throws `clock_skew` (and counts it) when the
   * remote is more than `maxOffsetMs` ahead of our physical clock; the local clock is then unchanged.
   */
  receive(remote: Hlc): Hlc {
    const pt = this.clock.nowMs();
    if (remote.wallMs - pt > this.options.maxOffsetMs) {
      this.rejectedCount++;
      throw new MeridianError(
        'clock_skew',
        `remote timestamp is ${remote.wallMs - pt} ms ahead of the local clock (max ${this.options.maxOffsetMs} ms)`,
      );
    }
    const wall = Math.max(pt, this.last.wallMs, remote.wallMs);
    let logical: number;
    if (wall === this.last.wallMs && wall === remote.wallMs)
      logical = Math.max(this.last.logical, remote.logical) + 1;
    else if (wall === this.last.wallMs) logical = this.last.logical + 1;
    else if (wall === remote.wallMs) logical = remote.logical + 1;
    else logical = 0;
    return this.advanceTo({ wallMs: wall, logical });
  }

  /** Raise the floor after a restart, so timestamps never repeat ones already persisted. */
  restore(persisted: Hlc): void {
    if (compareHlc(persisted, this.last) > 0) this.last = persisted;
  }

  private advanceTo(t: Hlc): Hlc {
    // The logical counter is bounded by its encoding; spilling into the next millisecond keeps order.
    this.last = t.logical > MAX_LOGICAL ? { wallMs: t.wallMs + 1, logical: 0 } : t;
    return this.last;
  }
}
