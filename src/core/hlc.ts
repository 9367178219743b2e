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

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wallMs !== b.wallMs ? a.wallMs - b.wallMs : a.logical - b.logical;
}

/**
 * The encoded wall part of the last timestamp encoded: consecutive timestamps mostly share their
 * millisecond (every write encodes one, so this saves a number-to-hex conversion per write).
 */
let lastWallMs = Number.NaN;
let lastWallHex = '';
const LOGICAL_ZERO = '-' + '0'.repeat(LOGICAL_DIGITS);

/** Fixed-width hex encoding whose string order is the time order. */
export function encodeHlc(t: Hlc): string {
  if (t.wallMs !== lastWallMs) {
    lastWallHex = t.wallMs.toString(16).padStart(WALL_DIGITS, '0');
    lastWallMs = t.wallMs;
  }
  return t.logical === 0
    ? lastWallHex + LOGICAL_ZERO
    : `${lastWallHex}-${t.logical.toString(16).padStart(LOGICAL_DIGITS, '0')}`;
}

/** The value of one lowercase hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

export function decodeHlc(s: string): Hlc {
  // Parsed by hand, without a regex and two slices (every remote change is decoded): accepts
  // exactly /^[0-9a-f]{12}-[0-9a-f]{6}$/.
  if (
    typeof s === 'string' &&
    s.length === WALL_DIGITS + 1 + LOGICAL_DIGITS &&
    s.charCodeAt(WALL_DIGITS) === 45
  ) {
    let wallMs = 0;
    let logical = 0;
    let ok = true;
    for (let i = 0; i < WALL_DIGITS; i++) {
      const d = hexDigit(s.charCodeAt(i));
      if (d < 0) ok = false;
      wallMs = wallMs * 16 + d;
    }
    for (let i = WALL_DIGITS + 1; i < s.length; i++) {
      const d = hexDigit(s.charCodeAt(i));
      if (d < 0) ok = false;
      logical = logical * 16 + d;
    }
    if (ok) return { wallMs, logical };
  }
  throw new MeridianError('bad_request', `malformed HLC timestamp: ${JSON.stringify(s)}`);
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
