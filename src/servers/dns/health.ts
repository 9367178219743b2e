/**
 * Which regions the GeoDNS server may answer: it probes each region's edge (`GET /healthz`) on a
 * timer and feeds the results to the core HealthState machine, the same one the edge uses, with the
 * same interval, timeout, fall and rise settings (cfg.edge.health).
 */
import { request } from 'undici';
import type { MeridianConfig } from '../../adapters/config.js';
import { systemClock, systemTimers } from '../../adapters/system.js';
import {
  type HealthEvent,
  HealthState,
  type HealthStatus,
  type HealthTransition,
} from '../../core/health.js';
import type { Clock, TimerHandle, Timers } from '../../core/ports.js';
import type { RegionTarget } from './zone.js';

export type ProbeResult = HealthEvent & { kind: 'probe-ok' | 'probe-failed' | 'probe-unhealthy' };
export type Probe = (url: string, timeoutMs: number) => Promise<ProbeResult>;

/** GET url: 2xx is ok, any other status unhealthy (503: draining), no answer in time failed. */
export const httpProbe: Probe = async (url, timeoutMs) => {
  const started = performance.now();
  try {
    const res = await request(url, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body.dump();
    const rttMs = performance.now() - started;
    if (res.statusCode >= 200 && res.statusCode < 300) return { kind: 'probe-ok', rttMs };
    return { kind: 'probe-unhealthy', reason: `HTTP ${res.statusCode}` };
  } catch (e) {
    const err = e as { code?: string; name?: string; message?: string };
    return { kind: 'probe-failed', reason: err.code ?? err.name ?? err.message ?? 'error' };
  }
};

export interface RegionHealthView {
  region: string;
  status: HealthStatus;
  srttMs: number | undefined;
  reason: string;
  sinceMs: number;
  probeUrl: string | undefined;
}

type Settings = MeridianConfig['edge']['health'];

/**
 * Probes every region that has a health URL; regions without one (no edge, static addresses) count
 * as healthy.
 * @example
 * const health = new EdgeHealthMonitor(plan.regions, cfg.edge.health);
 * await health.start(); // one probe round first, so the first answer already knows who is down
 * health.isHealthy('eu-west-1');
 */
export class EdgeHealthMonitor {
  private readonly states = new Map<string, HealthState>();
  private readonly timers = new Map<string, TimerHandle>();
  private readonly listeners: Array<(region: string, t: HealthTransition) => void> = [];
  private running = false;

  constructor(
    private readonly regions: RegionTarget[],
    private readonly settings: Settings,
    private readonly deps: { probe?: Probe; clock?: Clock; timers?: Timers } = {},
  ) {}

  private get probe(): Probe {
    return this.deps.probe ?? httpProbe;
  }

  private get clock(): Clock {
    return this.deps.clock ?? systemClock;
  }

  /** Runs one probe round (a region whose first probe fails starts down), then probes on a timer. */
  async start(): Promise<void> {
    this.running = true;
    const probed = this.regions.filter((r) => r.healthUrl !== undefined);
    await Promise.all(
      probed.map(async (r) => {
        const first = await this.probe(r.healthUrl as string, this.settings.timeoutMs);
        const now = this.clock.nowMs();
        const state = new HealthState(
          { fall: this.settings.fall, rise: this.settings.rise },
          first.kind === 'probe-ok' ? 'up' : 'down',
          now,
        );
        state.lastReason = first.kind === 'probe-ok' ? 'first probe ok' : `first probe: ${first.reason}`;
        if (first.kind === 'probe-ok') state.observe(first, now);
        this.states.set(r.id, state);
        this.schedule(r);
      }),
    );
  }

  private schedule(r: RegionTarget): void {
    if (!this.running) return;
    const timers = this.deps.timers ?? systemTimers;
    this.timers.set(
      r.id,
      timers.setTimeout(() => {
        void this.probeOnce(r).finally(() => this.schedule(r));
      }, this.settings.intervalMs),
    );
  }

  private async probeOnce(r: RegionTarget): Promise<void> {
    const result = await this.probe(r.healthUrl as string, this.settings.timeoutMs);
    const state = this.states.get(r.id);
    if (!state || !this.running) return;
    const t = state.observe(result, this.clock.nowMs());
    if (t) for (const l of this.listeners) l(r.id, t);
  }

  onChange(listener: (region: string, t: HealthTransition) => void): void {
    this.listeners.push(listener);
  }

  isHealthy(region: string): boolean {
    const s = this.states.get(region);
    return s === undefined ? this.regions.some((r) => r.id === region) : s.status === 'up';
  }

  view(): RegionHealthView[] {
    return this.regions.map((r) => {
      const s = this.states.get(r.id);
      return {
        region: r.id,
        status: s?.status ?? 'up',
        srttMs: s?.srttMs,
        reason: s?.lastReason ?? 'no health URL: always answered',
        sinceMs: s?.lastChangeMs ?? 0,
        probeUrl: r.healthUrl,
      };
    });
  }

  stop(): void {
    this.running = false;
    const timers = this.deps.timers ?? systemTimers;
    for (const h of this.timers.values()) timers.clearTimeout(h);
    this.timers.clear();
  }
}
