/**
 * Active health checks: every `intervalMs`, GET /healthz on each region node. Each probe's
 * deadline is its path's RTO (core/health.ts): 200 is a good probe (its RTT feeds the estimate), a
 * 503 is a region saying it is draining or failed, anything else or no answer by the deadline is a
 * failed probe. A probe past its deadline keeps listening up to the ceiling: a late answer still
 * proves the region alive and teaches the estimate the slower path.
 *
 * The probes of one round are judged together: a timeout is held until every other probe of its
 * round has answered or reached its own deadline (so at most until the round's longest deadline).
 * Paths' deadlines differ (280-540 ms in the ten-region lab), so when everything stalls at once the
 * shortest paths time out first; judged alone, they were ejected before the others' silence could
 * count against it (routing table, "silence everywhere"). A late answer during the hold cancels the
 * timeout. Refused and reset probes are reported at once.
 */
import type { FailureKind, HealthEvent } from '../../core/health.js';
import { classifyFailure, DEFAULT_HEALTH, PROBE_ABANDON_MS } from '../../core/health.js';
import type { RegionId } from '../../core/types.js';
import type { Upstream } from './upstreams.js';

export interface ProberOptions {
  intervalMs: number;
  /** The deadline before the first sample, and for every probe when `timeoutFor` is absent. */
  timeoutMs: number;
  /** How long a probe past its deadline still waits for a late answer (the RTO ceiling). */
  maxTimeoutMs?: number;
  /** Each path's current deadline (the routing table's RTO). */
  timeoutFor?: (region: RegionId) => number;
}

/**
 * One probe; never throws. `report` is called once with the verdict at the deadline or on the
 * answer, and once more with `probe-ok` if an answer comes after a reported timeout (within
 * `maxWaitMs`).
 *
 * A probe that finds no idle connection in the probe pool must open one (a TCP handshake, one more
 * round trip) or wait behind a busy one: its deadline gets one more RTO, and its answer is marked
 * `fresh` (Karn's rule: once the path has an estimate, such a sample, which measured the handshake
 * or the queue too, is not taken).
 */
export function probeOnce(
  u: Upstream,
  timeoutMs: number,
  report: (ev: HealthEvent) => void,
  maxWaitMs = timeoutMs,
  round?: ProbeRound,
  priority = 0,
): Promise<void> {
  const started = performance.now();
  const fresh = u.probe.stats.free === 0;
  const listenMs = Math.max(timeoutMs, maxWaitMs);
  const deadlineMs = fresh ? Math.max(timeoutMs, Math.min(2 * timeoutMs, listenMs)) : timeoutMs;
  const signal = AbortSignal.timeout(Math.max(listenMs, PROBE_ABANDON_MS));
  let settled = false;
  // Answered or past its deadline: this probe no longer keeps its round's timeouts waiting.
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    round?.settle();
  };
  round?.join();
  // The deadline is judged one event-loop turn after the timer fires, so an answer that arrived
  // while this process was stalled is read first; how late the timer fired is reported with it.
  const deadline = setTimeout(() => {
    const lateMs = performance.now() - started - deadlineMs;
    setImmediate(() => {
      if (settled) return;
      const verdict = (): void => {
        if (settled) return;
        settled = true;
        report({
          kind: 'probe-failed',
          reason: `no answer in ${Math.round(deadlineMs)} ms`,
          failure: 'timeout',
          lateMs,
        });
      };
      if (round) round.hold(verdict, priority);
      else verdict();
      finish();
    });
  }, deadlineMs);
  deadline.unref();
  const answer = (ev: HealthEvent): void => {
    clearTimeout(deadline);
    if (!settled) {
      settled = true;
      report(ev);
    } else if (ev.kind === 'probe-ok' && performance.now() - started <= listenMs) report(ev);
    finish();
  };
  return u.probe
    .request({
      method: 'GET',
      path: '/healthz',
      signal,
      headersTimeout: Math.max(listenMs, PROBE_ABANDON_MS),
    })
    .then(async (res) => {
      await res.body.dump();
      const rttMs = performance.now() - started;
      if (res.statusCode === 200)
        answer(fresh ? { kind: 'probe-ok', rttMs, fresh } : { kind: 'probe-ok', rttMs });
      else if (res.statusCode === 503) answer({ kind: 'probe-unhealthy', reason: 'healthz answered 503' });
      else {
        const failure: FailureKind = res.statusCode >= 500 ? 'unhealthy' : 'other';
        answer({ kind: 'probe-failed', reason: `healthz answered ${res.statusCode}`, failure });
      }
    })
    .catch((e: unknown) => {
      const err = e as Error & { code?: string };
      if (signal.aborted) {
        clearTimeout(deadline);
        finish();
        if (!settled) {
          settled = true;
          report({
            kind: 'probe-failed',
            reason: `no answer in ${Math.round(PROBE_ABANDON_MS)} ms`,
            failure: 'timeout',
          });
        }
        return;
      }
      const reason = err.code ?? err.message;
      answer({ kind: 'probe-failed', reason, failure: classifyFailure(`${reason} ${err.message}`) });
    });
}

/**
 * The probes sent together: timeouts wait until none of them is still inside its deadline.
 * @example
 * const r = new ProbeRound(); r.join(); r.join();
 * r.hold(reportTimeout, 1); r.settle(); // held: the other probe is still within its deadline
 * r.settle();                           // now reportTimeout runs
 */
export class ProbeRound {
  private open = 0;
  private held: { verdict: () => void; priority: number }[] = [];

  join(): void {
    this.open++;
  }

  /** One probe answered or reached its deadline; the last one releases the held verdicts. */
  settle(): void {
    this.open--;
    if (this.open > 0) return;
    // Lowest priority first: first failures are counted before anyone's ejection is judged.
    const held = this.held.sort((a, b) => a.priority - b.priority);
    this.held = [];
    for (const h of held) h.verdict();
  }

  /** Holds a timeout verdict until the round settles (call before this probe's own `settle`). */
  hold(verdict: () => void, priority: number): void {
    this.held.push({ verdict, priority });
  }
}

/**
 * Probes every region now and then every `intervalMs`, even while earlier probes are still out:
 * a silent region fails one probe per interval, so it falls after about
 * `RTO + (fall - 1) * intervalMs`. A refused or reset probe is confirmed at once by another, so a
 * crashed region falls within milliseconds rather than an interval. `report` receives each result
 * as it arrives.
 * @example
 * const stop = startProber(upstreams, { intervalMs: 250, timeoutMs: 1000, timeoutFor: (r) => table.probeTimeoutMs(r) },
 *   (r, ev) => table.observe(r, ev, Date.now()));
 */
export function startProber(
  upstreams: ReadonlyMap<RegionId, Upstream>,
  options: ProberOptions,
  report: (region: RegionId, event: HealthEvent) => void,
): { firstRound: Promise<void>; stop(): void } {
  let stopped = false;
  const confirming = new Set<RegionId>();
  // Consecutive failed probes per region as reported (the table's count, near enough): a round's
  // held timeouts are released first failures first, so a region's second failure is judged
  // with the first failures of the same round already counted.
  const failing = new Map<RegionId, number>();
  const one = (u: Upstream, r?: ProbeRound): Promise<void> => {
    const timeoutMs = options.timeoutFor?.(u.region) ?? options.timeoutMs;
    return probeOnce(
      u,
      timeoutMs,
      (ev) => {
        if (stopped) return;
        failing.set(u.region, ev.kind === 'probe-ok' ? 0 : (failing.get(u.region) ?? 0) + 1);
        report(u.region, ev);
        const gone = ev.kind === 'probe-failed' && (ev.failure === 'refused' || ev.failure === 'reset');
        if (gone && !confirming.has(u.region)) {
          confirming.add(u.region);
          void one(u).finally(() => confirming.delete(u.region));
        }
      },
      options.maxTimeoutMs ?? DEFAULT_HEALTH.maxTimeoutMs,
      r,
      failing.get(u.region) ?? 0,
    );
  };
  const round = (): Promise<void> => {
    const r = new ProbeRound();
    return Promise.all([...upstreams.values()].map((u) => one(u, r))).then(() => undefined);
  };
  const firstRound = round();
  const timer = setInterval(() => void round(), options.intervalMs);
  timer.unref();
  return {
    firstRound,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
