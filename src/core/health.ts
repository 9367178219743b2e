/**
 * Health of one target (a region node or an edge) as seen by a prober: active probes with fall and
 * rise thresholds, plus passive ejection on connection errors and 5xx. Used by the edge, the GeoDNS
 * server and the simulator alike; it never reads the clock, callers pass `nowMs`.
 */

export interface HealthOptions {
  /** Consecutive failed probes that mark an up target down. */
  fall: number;
  /** Consecutive successful probes that mark a down target up. */
  rise: number;
  /** Consecutive passive failures (live traffic) that eject an up target at once. */
  passiveFall: number;
  /** Smoothing factor of the RTT estimate (EWMA weight of the newest sample). */
  rttAlpha: number;
}

export const DEFAULT_HEALTH: HealthOptions = { fall: 3, rise: 2, passiveFall: 1, rttAlpha: 0.3 };

export type HealthStatus = 'up' | 'down';

export type HealthEvent =
  | { kind: 'probe-ok'; rttMs: number }
  | { kind: 'probe-failed'; reason: string }
  /** The target answered a probe but said it is draining or failed (503 from /healthz). */
  | { kind: 'probe-unhealthy'; reason: string }
  | { kind: 'request-ok'; rttMs?: number }
  | { kind: 'request-failed'; reason: string };

export interface HealthTransition {
  from: HealthStatus;
  to: HealthStatus;
  reason: string;
  atMs: number;
}

export class HealthState {
  status: HealthStatus;
  /** Smoothed round-trip time in ms, undefined before the first successful probe. */
  srttMs: number | undefined;
  consecutiveOk = 0;
  consecutiveFailed = 0;
  passiveFailed = 0;
  lastChangeMs: number;
  lastReason = 'initial';
  readonly options: HealthOptions;

  constructor(options: Partial<HealthOptions> = {}, initial: HealthStatus = 'up', nowMs = 0) {
    this.options = { ...DEFAULT_HEALTH, ...options };
    this.status = initial;
    this.lastChangeMs = nowMs;
  }

  /** Feeds one observation; returns the transition when the status changed. */
  observe(event: HealthEvent, nowMs: number): HealthTransition | undefined {
    switch (event.kind) {
      case 'probe-ok':
        this.sampleRtt(event.rttMs);
        this.consecutiveFailed = 0;
        this.passiveFailed = 0;
        this.consecutiveOk++;
        if (this.status === 'down' && this.consecutiveOk >= this.options.rise) {
          return this.change('up', `${this.consecutiveOk} probes ok`, nowMs);
        }
        return undefined;
      case 'probe-failed':
      case 'probe-unhealthy':
        this.consecutiveOk = 0;
        this.consecutiveFailed++;
        if (this.status === 'up' && this.consecutiveFailed >= this.options.fall) {
          return this.change('down', `${this.consecutiveFailed} probes failed: ${event.reason}`, nowMs);
        }
        return undefined;
      case 'request-ok':
        if (event.rttMs !== undefined) this.sampleRtt(event.rttMs);
        this.passiveFailed = 0;
        return undefined;
      case 'request-failed':
        this.passiveFailed++;
        this.consecutiveOk = 0;
        if (this.status === 'up' && this.passiveFailed >= this.options.passiveFall) {
          return this.change('down', `ejected: ${event.reason}`, nowMs);
        }
        return undefined;
    }
  }

  private sampleRtt(rttMs: number): void {
    this.srttMs =
      this.srttMs === undefined ? rttMs : this.srttMs + this.options.rttAlpha * (rttMs - this.srttMs);
  }

  private change(to: HealthStatus, reason: string, nowMs: number): HealthTransition {
    const t: HealthTransition = { from: this.status, to, reason, atMs: nowMs };
    this.status = to;
    this.lastChangeMs = nowMs;
    this.lastReason = reason;
    if (to === 'down') this.consecutiveOk = 0;
    else this.consecutiveFailed = 0;
    return t;
  }
}
