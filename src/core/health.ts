/**
 * Health of one target (a region node or an edge) as seen by one prober, from evidence: a probe
 * timeout derived from the path's own measured RTT and variance (RFC 6298), ejection only after
 * consecutive failures of a kind that means the target is gone, and recovery with hysteresis. Used
 * by the edge, the GeoDNS server and the simulator alike; it never reads the clock, callers pass
 * `nowMs`.
 */

export interface HealthOptions {
  /** Consecutive failed probes (of the kinds that mean "gone") that mark an up target down. */
  fall: number;
  /** Consecutive successful probes that mark a down target up (doubled for a flapping target). */
  rise: number;
  /**
   * Consecutive failed requests of live traffic that eject an up target without waiting for probes.
   * Only a refused connection (nothing listens) or a reset one counts; slow answers and 5xx never do.
   */
  passiveFall: number;
  /** Probe timeout before the path's first RTT sample, when no RTT is configured for it. */
  timeoutMs: number;
  /** RTT assumed for the path before it is measured (undefined: use `timeoutMs` until then). */
  initialRttMs: number | undefined;
  /**
   * G of RFC 6298, the least margin over the smoothed RTT: it absorbs what the variance does not
   * show, such as a stall of either process's event loop on a busy machine.
   */
  granularityMs: number;
  /** Floor and ceiling of the derived probe timeout. */
  minTimeoutMs: number;
  maxTimeoutMs: number;
  /**
   * A timeout whose own timer fired this much late says the prober's event loop was stalled, not
   * that the target was silent: it is no evidence either way.
   */
  stallMs: number;
  /** An ejection this soon after the last recovery marks the target as flapping (rise doubles). */
  flapWindowMs: number;
}

export const DEFAULT_HEALTH: HealthOptions = {
  fall: 2,
  rise: 2,
  passiveFall: 2,
  timeoutMs: 1000,
  initialRttMs: undefined,
  granularityMs: 200,
  minTimeoutMs: 200,
  maxTimeoutMs: 2000,
  stallMs: 75,
  flapWindowMs: 30_000,
};

/**
 * How long a probe is kept before its request is abandoned. Answers after the listening window
 * (the RTO ceiling) are read and dropped: aborting would destroy the connection, and the next
 * probe would pay a new handshake (one more RTT) on a path already judged slow.
 */
export const PROBE_ABANDON_MS = 10_000;

export type HealthStatus = 'up' | 'down';

/**
 * Why a probe or a request got no good answer. `refused`, `reset` and `timeout` are about the
 * connection; `unhealthy` is the target saying so (5xx from its health endpoint).
 */
export type FailureKind = 'refused' | 'reset' | 'timeout' | 'unhealthy' | 'other';

export type HealthEvent =
  /**
   * An answer to a probe (also one that comes after its timeout was reported: it proves life).
   * `fresh`: the probe also paid for opening a connection, or waited for one, so its RTT is no
   * sample of the path (Karn's rule) once the path has an estimate; before that it is taken, an
   * over-estimate that errs on the side of a longer deadline.
   */
  | { kind: 'probe-ok'; rttMs: number; fresh?: boolean }
  /** No good answer; `lateMs` is how late the prober's own timeout timer fired (event-loop lag). */
  | { kind: 'probe-failed'; reason: string; failure?: FailureKind; lateMs?: number }
  /** The target answered a probe but said it is draining or failed (503 from /healthz). */
  | { kind: 'probe-unhealthy'; reason: string }
  | { kind: 'request-ok'; rttMs?: number }
  | { kind: 'request-failed'; reason: string; failure?: FailureKind };

export interface HealthTransition {
  from: HealthStatus;
  to: HealthStatus;
  reason: string;
  atMs: number;
}

/**
 * The kind of a failure from an error code or message (undici's and node's), for callers that
 * only have the text.
 * @example classifyFailure('ECONNREFUSED') // 'refused'
 */
export function classifyFailure(reason: string): FailureKind {
  if (reason.includes('ECONNREFUSED')) return 'refused';
  if (
    reason.includes('ECONNRESET') ||
    reason.includes('EPIPE') ||
    reason.includes('UND_ERR_SOCKET') ||
    reason.includes('other side closed') ||
    reason.includes('socket hang up')
  )
    return 'reset';
  if (/timeout|timed out|no answer in|ETIMEDOUT|UND_ERR_HEADERS_TIMEOUT|AbortError/i.test(reason))
    return 'timeout';
  if (/answered 5\d\d|HTTP 5\d\d/.test(reason)) return 'unhealthy';
  return 'other';
}

/**
 * Round-trip estimate of one path, RFC 6298 §2: srtt and rttvar with α = 1/8, β = 1/4, and
 * RTO = srtt + max(G, 4·rttvar) within [minTimeoutMs, maxTimeoutMs].
 */
export function rtoMs(srttMs: number, rttvarMs: number, o: HealthOptions): number {
  const raw = srttMs + Math.max(o.granularityMs, 4 * rttvarMs);
  // Whole milliseconds: timers and AbortSignal.timeout take integers.
  return Math.ceil(Math.min(o.maxTimeoutMs, Math.max(o.minTimeoutMs, raw)));
}

/** Planted defects for the simulator's health checker (each must be caught; see docs/simulator.md). */
export interface HealthBugs {
  /** Probes use the configured timeout for ever instead of the path's RTO, and one timeout ejects. */
  staticTimeout?: boolean;
  /** Timeouts are never evidence (only refused or reset connections are): a blackholed target stays up. */
  timeoutNotEvidence?: boolean;
}

/**
 * @example
 * const h = new HealthState({ fall: 2, initialRttMs: 330 }, 'up', now);
 * setTimeout(probe, h.probeTimeoutMs());   // 330 + max(G, 2·330), within the floor and ceiling
 * h.observe({ kind: 'probe-ok', rttMs: 334 }, now);
 */
export class HealthState {
  status: HealthStatus;
  /** Smoothed round-trip time in ms, undefined before the first successful probe. */
  srttMs: number | undefined;
  rttvarMs: number | undefined;
  consecutiveOk = 0;
  consecutiveFailed = 0;
  passiveFailed = 0;
  /** Failures ignored because the prober itself was stalled when its timeout fired. */
  stalled = 0;
  /** The kind of the latest failure counted since the last good probe. */
  lastFailure: FailureKind | undefined;
  /** Enough evidence to eject, but a cap (see RoutingTable) kept the target up. */
  held = false;
  lastChangeMs: number;
  lastReason = 'initial';
  /** When a probe last timed out (counted, not a stalled prober's), for "silence everywhere". */
  lastTimeoutMs: number | undefined;
  private lastUpMs = Number.NEGATIVE_INFINITY;
  private flapping = false;
  readonly options: HealthOptions;
  private readonly bugs: HealthBugs;

  constructor(
    options: Partial<HealthOptions> = {},
    initial: HealthStatus = 'up',
    nowMs = 0,
    bugs: HealthBugs = {},
  ) {
    this.options = { ...DEFAULT_HEALTH };
    // A key present but undefined (an optional config field) keeps its default.
    for (const [k, v] of Object.entries(options)) {
      if (v !== undefined) (this.options as unknown as Record<string, unknown>)[k] = v;
    }
    this.options.maxTimeoutMs = Math.max(this.options.maxTimeoutMs, this.options.minTimeoutMs);
    this.status = initial;
    this.lastChangeMs = nowMs;
    this.bugs = bugs;
  }

  /** The deadline of the next probe: the path's RTO, or before any sample the configured RTT's or timeout. */
  probeTimeoutMs(): number {
    const o = this.options;
    if (this.bugs.staticTimeout) return o.timeoutMs;
    if (this.srttMs !== undefined && this.rttvarMs !== undefined) return rtoMs(this.srttMs, this.rttvarMs, o);
    if (o.initialRttMs !== undefined) return rtoMs(o.initialRttMs, o.initialRttMs / 2, o);
    return Math.ceil(Math.min(o.maxTimeoutMs, Math.max(o.minTimeoutMs, o.timeoutMs)));
  }

  /**
   * Whether this path was silent within the last `windowMs`: failing probes now, or a probe timed
   * out in the window even if answers came since, or it was ejected on silence in the window. A
   * stall of the network or the machine silences paths at slightly different moments (each path
   * has its own deadline), so "at the same moment" has to mean "within a window".
   */
  recentlySilent(nowMs: number, windowMs: number): boolean {
    if (this.status === 'up' && this.consecutiveFailed > 0 && this.lastFailure === 'timeout') return true;
    if (this.lastTimeoutMs === undefined || nowMs - this.lastTimeoutMs > windowMs) return false;
    return this.status === 'up' || nowMs - this.lastChangeMs <= windowMs;
  }

  /** Consecutive good probes needed to come back now (doubled while the target flaps). */
  riseNeeded(): number {
    return this.flapping ? this.options.rise * 2 : this.options.rise;
  }

  /**
   * Feeds one observation; returns the transition when the status changed. `mayEject` is asked
   * only when the evidence is complete: false keeps the target up (a cap on ejections) and it is
   * asked again on the next failure.
   */
  observe(
    event: HealthEvent,
    nowMs: number,
    mayEject: (failure: FailureKind, nowMs: number) => boolean = always,
  ): HealthTransition | undefined {
    switch (event.kind) {
      case 'probe-ok':
        if (!event.fresh || this.srttMs === undefined) this.sampleRtt(event.rttMs);
        this.consecutiveFailed = 0;
        this.lastFailure = undefined;
        this.passiveFailed = 0;
        this.held = false;
        this.consecutiveOk++;
        if (this.status === 'down' && this.consecutiveOk >= this.riseNeeded()) {
          return this.change('up', `${this.consecutiveOk} probes ok`, nowMs);
        }
        if (this.status === 'up' && nowMs - this.lastUpMs > this.options.flapWindowMs) this.flapping = false;
        return undefined;
      case 'probe-failed':
      case 'probe-unhealthy': {
        const failure =
          event.kind === 'probe-unhealthy' ? 'unhealthy' : (event.failure ?? classifyFailure(event.reason));
        if (failure === 'timeout' && !this.bugs.staticTimeout) {
          if (this.bugs.timeoutNotEvidence) return undefined;
          // A timer that fired late measured the prober's stall, not the target's silence.
          if (event.kind === 'probe-failed' && (event.lateMs ?? 0) > this.options.stallMs) {
            this.stalled++;
            return undefined;
          }
        }
        this.consecutiveOk = 0;
        this.consecutiveFailed++;
        this.lastFailure = failure;
        if (failure === 'timeout') this.lastTimeoutMs = nowMs;
        const fall = this.bugs.staticTimeout ? 1 : this.options.fall;
        if (this.status === 'up' && this.consecutiveFailed >= fall) {
          return this.eject(
            `${this.consecutiveFailed} probes failed: ${event.reason}`,
            failure,
            nowMs,
            mayEject,
          );
        }
        return undefined;
      }
      case 'request-ok':
        if (event.rttMs !== undefined) this.sampleRtt(event.rttMs);
        this.passiveFailed = 0;
        return undefined;
      case 'request-failed': {
        const failure = event.failure ?? classifyFailure(event.reason);
        // A slow or failing answer is a live region; only a connection nobody holds is evidence.
        if (failure !== 'refused' && failure !== 'reset') return undefined;
        this.passiveFailed++;
        this.consecutiveOk = 0;
        // Nothing listening is unambiguous; a reset may be a keep-alive race, so it needs company.
        const needed = failure === 'refused' ? 1 : this.options.passiveFall;
        if (this.status === 'up' && this.passiveFailed >= needed) {
          return this.eject(
            `ejected: ${this.passiveFailed} requests failed: ${event.reason}`,
            failure,
            nowMs,
            mayEject,
          );
        }
        return undefined;
      }
    }
  }

  private eject(
    reason: string,
    failure: FailureKind,
    nowMs: number,
    mayEject: (failure: FailureKind, nowMs: number) => boolean,
  ): HealthTransition | undefined {
    if (!mayEject(failure, nowMs)) {
      this.held = true;
      this.lastReason = `held up (ejection cap or silence everywhere): ${reason}`;
      return undefined;
    }
    this.held = false;
    if (nowMs - this.lastUpMs <= this.options.flapWindowMs) this.flapping = true;
    return this.change('down', reason, nowMs);
  }

  private sampleRtt(rttMs: number): void {
    if (this.srttMs === undefined || this.rttvarMs === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
      return;
    }
    this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
    this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
  }

  private change(to: HealthStatus, reason: string, nowMs: number): HealthTransition {
    const t: HealthTransition = { from: this.status, to, reason, atMs: nowMs };
    this.status = to;
    this.lastChangeMs = nowMs;
    this.lastReason = reason;
    if (to === 'down') this.consecutiveOk = 0;
    else {
      this.consecutiveFailed = 0;
      this.passiveFailed = 0;
      this.lastUpMs = nowMs;
    }
    return t;
  }
}

const always = (): boolean => true;

/** One vantage point's opinion of a target; `abstain`: it could not be asked, or its view is stale. */
export type Vote = 'up' | 'down' | 'abstain';

/**
 * Whether a quorum of vantage points sees a target down (Route 53 style): a strict majority of
 * the votes cast, and at least `minDown` of them when given. A vantage point that cannot be
 * reached abstains rather than counting either way: it is as likely cut off itself as the target
 * is gone, and a region that is lost takes its own edge's vote with it.
 * @example quorumDown(['down', 'down', 'up', 'abstain']) // true: 2 of 3 cast
 */
export function quorumDown(
  votes: readonly Vote[],
  minDown = 1,
): { down: boolean; downVotes: number; cast: number } {
  let downVotes = 0;
  let cast = 0;
  for (const v of votes) {
    if (v === 'abstain') continue;
    cast++;
    if (v === 'down') downVotes++;
  }
  return { down: cast > 0 && downVotes * 2 > cast && downVotes >= Math.min(minDown, cast), downVotes, cast };
}
