/**
 * Active health checks: every `intervalMs`, GET /healthz on each region node with a `timeoutMs`
 * deadline. 200 is a good probe (its RTT feeds the smoothed RTT), a 503 is a region saying it is
 * draining or failed, anything else or no answer in time is a failed probe.
 */
import type { HealthEvent } from '../../core/health.js';
import type { RegionId } from '../../core/types.js';
import type { Upstream } from './upstreams.js';

export interface ProberOptions {
  intervalMs: number;
  timeoutMs: number;
}

/** One probe; never throws. */
export async function probeOnce(u: Upstream, timeoutMs: number): Promise<HealthEvent> {
  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await u.probe.request({ method: 'GET', path: '/healthz', signal, headersTimeout: timeoutMs });
    await res.body.dump();
    const rttMs = performance.now() - started;
    if (res.statusCode === 200) return { kind: 'probe-ok', rttMs };
    if (res.statusCode === 503) return { kind: 'probe-unhealthy', reason: 'healthz answered 503' };
    return { kind: 'probe-failed', reason: `healthz answered ${res.statusCode}` };
  } catch (e) {
    const err = e as Error & { code?: string };
    const reason = signal.aborted ? `no answer in ${timeoutMs} ms` : (err.code ?? err.message);
    return { kind: 'probe-failed', reason };
  }
}

/**
 * Probes every region now and then every `intervalMs`, even while earlier probes are still out:
 * a region that stops answering then fails one probe per interval, so it falls after about
 * `timeoutMs + (fall - 1) * intervalMs` rather than `fall * timeoutMs`. `report` receives each
 * result as it arrives.
 * @example
 * const stop = startProber(upstreams, { intervalMs: 1000, timeoutMs: 500 }, (r, ev) => table.observe(r, ev, Date.now()));
 */
export function startProber(
  upstreams: ReadonlyMap<RegionId, Upstream>,
  options: ProberOptions,
  report: (region: RegionId, event: HealthEvent) => void,
): { firstRound: Promise<void>; stop(): void } {
  let stopped = false;
  const round = (): Promise<void> =>
    Promise.all(
      [...upstreams.values()].map(async (u) => {
        const ev = await probeOnce(u, options.timeoutMs);
        if (!stopped) report(u.region, ev);
      }),
    ).then(() => undefined);
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
