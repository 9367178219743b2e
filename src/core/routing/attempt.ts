/**
 * One proxied request as a state machine: it starts in the plan's first region and, after each
 * upstream outcome, either delivers, replays once in the region an answer names (421/503 with
 * `Meridian-Replay`, up or not), or retries an idempotent request once in the next healthy region.
 */
import type { RegionId } from '../types.js';
import type { RoutePlan, RouteReason } from './policy.js';
import { type AnswerClass, classifyAnswer } from './request.js';

export type UpstreamOutcome =
  | { kind: 'answer'; status: number; replayHeader: string | undefined }
  /** No answer: connection refused or reset, timeout. */
  | { kind: 'error'; reason: string };

export type NextStep =
  /** Send the current answer to the client. */
  | { kind: 'deliver' }
  /** Send the request (again) to `region`. */
  | { kind: 'send'; region: RegionId; reason: RouteReason }
  /** Nothing to deliver and nowhere left to try. */
  | { kind: 'fail'; reason: string };

/** What the edge learns about a region's health from one outcome. */
export type PassiveVerdict = 'ok' | 'failed' | 'neutral';

/**
 * @example
 * const a = new RequestAttempt(plan, isIdempotent('GET', false));
 * let step = a.first();                    // { kind: 'send', region: 'us-east-1', reason: 'nearest' }
 * step = a.next({ kind: 'error', reason: 'ECONNRESET' }, table.isUp.bind(table));
 *                                          // { kind: 'send', region: 'eu-west-1', reason: 'retry' }
 */
export class RequestAttempt {
  private retried = false;
  private replayed = false;
  // At most three regions per request: an array is cheaper than a Set on the hot path.
  private readonly tried: RegionId[] = [];
  region: RegionId;
  reason: RouteReason;

  constructor(
    readonly plan: RoutePlan,
    readonly idempotent: boolean,
    private readonly known: (r: RegionId) => boolean = () => true,
  ) {
    this.region = plan.order[0]!;
    this.reason = plan.reason;
  }

  first(): NextStep & { kind: 'send' } {
    this.tried.push(this.region);
    return { kind: 'send', region: this.region, reason: this.reason };
  }

  /** How an outcome bears on the current region's health (feed it to the routing table). */
  verdict(outcome: UpstreamOutcome): PassiveVerdict {
    if (outcome.kind === 'error') return 'failed';
    const c = this.classify(outcome);
    return c.kind === 'failure' ? 'failed' : c.kind === 'ok' ? 'ok' : 'neutral';
  }

  // verdict() and next() look at the same outcome: classify it once.
  private lastOutcome: UpstreamOutcome | undefined;
  private lastClass: AnswerClass = { kind: 'ok' };
  private classify(outcome: UpstreamOutcome & { kind: 'answer' }): AnswerClass {
    if (outcome !== this.lastOutcome) {
      this.lastOutcome = outcome;
      this.lastClass = classifyAnswer(outcome.status, outcome.replayHeader);
    }
    return this.lastClass;
  }

  /** The step after `outcome`; `isUp` is read after the outcome was fed to the routing table. */
  next(outcome: UpstreamOutcome, isUp: (r: RegionId) => boolean): NextStep {
    if (outcome.kind === 'answer') {
      const c = this.classify(outcome);
      if (c.kind === 'ok') return { kind: 'deliver' };
      if (c.kind === 'replay') {
        // One replay, to a known region other than this one. Whether this edge holds it down does
        // not matter: the region that owns the data is the only one that can answer, and the
        // alternative is handing the client the refusal (a probe's verdict may be wrong; the
        // replay finds out).
        if (this.replayed || c.region === this.region || !this.known(c.region)) {
          return { kind: 'deliver' };
        }
        this.replayed = true;
        return this.move(c.region, 'replay');
      }
      // A 5xx: retry elsewhere when allowed, else the client sees the region's answer.
      const alt = this.retryTarget(isUp);
      return alt === undefined ? { kind: 'deliver' } : this.move(alt, 'retry');
    }
    const alt = this.retryTarget(isUp);
    if (alt === undefined)
      return { kind: 'fail', reason: `region ${this.region} did not answer: ${outcome.reason}` };
    return this.move(alt, 'retry');
  }

  private retryTarget(isUp: (r: RegionId) => boolean): RegionId | undefined {
    // A replayed request has already had its second chance; a POST without a key gets none.
    if (!this.idempotent || this.retried || this.replayed) return undefined;
    const untried = this.plan.order.filter((r) => !this.tried.includes(r));
    return untried.find(isUp) ?? (this.plan.panic ? untried[0] : undefined);
  }

  private move(region: RegionId, reason: RouteReason): NextStep {
    if (reason === 'retry') this.retried = true;
    this.tried.push(region);
    this.region = region;
    this.reason = reason;
    return { kind: 'send', region, reason };
  }
}
