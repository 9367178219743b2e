/**
 * Health checks in the simulator: every region's edge runs the real routing table and health state
 * machine (core/routing/table.ts, core/health.ts, the code the edge ships) and probes every region
 * node over the simulated WAN in virtual time, as the edge's prober does: a probe per interval,
 * each with its path's RTO as deadline, judged one turn after the deadline timer fires, a late
 * answer still reported, a refused probe confirmed at once. The world adds what makes probes lie:
 * link RTT and jitter, partitions, crashes, and CPU stalls of either end (a stalled edge fires its
 * timers late; a stalled node answers late). The health checker compares each verdict with the truth.
 */
import {
  type HealthBugs,
  type HealthEvent,
  type HealthOptions,
  HealthState,
  type HealthStatus,
  rtoMs,
} from '../core/health.js';
import { type RegionTransition, RoutingTable } from '../core/routing/table.js';
import type { RegionId, RegionInfo } from '../core/types.js';
import { type HealthBounds, HealthChecker } from './checkers/health.js';
import type { Violation } from './history.js';
import type { Network } from './network.js';
import type { Prng } from './random.js';
import type { VirtualTime } from './time.js';

export interface StallProfile {
  /** Mean time between CPU stalls of one region's processes (0: none). */
  everyMs: number;
  stallMs: [number, number];
}

export const STALLS: Record<string, StallProfile> = {
  none: { everyMs: 0, stallMs: [0, 0] },
  light: { everyMs: 4000, stallMs: [20, 200] },
  heavy: { everyMs: 2000, stallMs: [50, 400] },
};

export interface HealthSimOptions {
  settings: Partial<HealthOptions> & { intervalMs: number; maxEjectedShare?: number };
  stalls: StallProfile;
  bugs: HealthBugs;
  /** How often the truth is sampled for the checker. */
  sampleEveryMs: number;
  /** Told of every health change a probe causes (the edge cancels requests to an ejected region). */
  onTransition?: (edge: RegionId, t: RegionTransition) => void;
}

/** The lab's settings with the old 400 ms constant as the pre-measurement timeout (what a bug falls back to). */
export const SIM_HEALTH: HealthSimOptions['settings'] = { intervalMs: 250, timeoutMs: 400, fall: 2, rise: 2 };

interface Target {
  alive(): boolean;
}

/**
 * @example
 * const h = new HealthSim(time, rng.fork('health'), regions, oneWayMs, net, (r) => procs.get(r)!.status === 'up', opts);
 * h.start(); await time.runUntil(10_000); h.violations();
 */
export class HealthSim {
  private readonly tables = new Map<RegionId, RoutingTable>();
  /** Per region, stall windows as [start, end) in virtual ms, generated ahead as time passes. */
  private readonly stalls = new Map<RegionId, Array<[number, number]>>();
  readonly checker: HealthChecker;
  private readonly o: HealthOptions & { intervalMs: number };
  private running = false;
  probes = 0;

  constructor(
    private readonly time: VirtualTime,
    private readonly rng: Prng,
    private readonly regions: readonly RegionInfo[],
    private readonly oneWayMs: (a: RegionId, b: RegionId) => number,
    private readonly net: Network,
    private readonly target: (r: RegionId) => Target,
    private readonly options: HealthSimOptions,
  ) {
    for (const edge of regions) {
      this.tables.set(
        edge.id,
        new RoutingTable(
          regions,
          { config: { policy: 'latency', weights: {}, priority: [] }, edgeLocation: edge },
          { ...options.settings, bugs: options.bugs },
          0,
        ),
      );
      this.stalls.set(edge.id, []);
    }
    this.o = { ...new HealthState(options.settings).options, intervalMs: options.settings.intervalMs };
    const maxStall = options.stalls.everyMs > 0 ? options.stalls.stallMs[1] : 0;
    const bounds: HealthBounds = {
      staleEvidenceMs: this.o.maxTimeoutMs + this.o.intervalMs + maxStall + 50,
      recoveryMs: this.o.intervalMs * (2 * this.o.rise + 1) + this.o.maxTimeoutMs + maxStall + 50,
    };
    this.checker = new HealthChecker(bounds);
  }

  start(): void {
    this.running = true;
    for (const edge of this.regions) {
      for (const t of this.regions) this.probeLoop(edge.id, t.id, this.rng.next() * this.o.intervalMs);
    }
    const sample = (): void => {
      if (!this.running) return;
      this.sampleAll();
      this.time.after(this.options.sampleEveryMs, sample);
    };
    this.time.after(this.options.sampleEveryMs, sample);
  }

  stop(): void {
    this.running = false;
  }

  /** The routing table of `edge`'s region (its edge routes users on it: sim/edge.ts). */
  table(edge: RegionId): RoutingTable {
    return this.tables.get(edge)!;
  }

  status(edge: RegionId, target: RegionId): HealthStatus {
    return this.tables.get(edge)!.isUp(target) ? 'up' : 'down';
  }

  violations(): Violation[] {
    return this.checker.violations();
  }

  /** When a process of `region` that wants to run at `atMs` actually runs (after any stall). */
  private runsAt(region: RegionId, atMs: number): number {
    const p = this.options.stalls;
    if (p.everyMs <= 0) return atMs;
    const windows = this.stalls.get(region)!;
    // Windows are generated in order up to a little past `atMs`.
    let last = windows.length > 0 ? windows[windows.length - 1]![1] : 0;
    while (last <= atMs + p.stallMs[1]) {
      // At least one longest stall apart: a stall is one slow spell, not back-to-back ones that
      // add up to a process that is gone (which is what a crash models).
      const start = last + p.stallMs[1] + this.rng.exp(p.everyMs);
      const end = start + this.rng.range(p.stallMs[0], p.stallMs[1]);
      windows.push([start, end]);
      last = end;
    }
    while (windows.length > 1 && windows[0]![1] < atMs - 10_000) windows.shift();
    for (const [s, e] of windows) if (atMs >= s && atMs < e) return e;
    return atMs;
  }

  private jittered(a: RegionId, b: RegionId): number {
    const base = a === b ? 0.5 : this.oneWayMs(a, b);
    const j = this.net.faults.jitterFrac;
    return Math.max(0.25, base * (1 + j * (2 * this.rng.next() - 1)));
  }

  private probeLoop(edge: RegionId, target: RegionId, delayMs: number): void {
    this.time.after(delayMs, () => {
      if (!this.running) return;
      // A stalled edge fires its interval timer late, and (as node's setInterval does) counts the
      // next interval from then: probes do not bunch up after a stall.
      const sentAt = this.runsAt(edge, this.time.nowMs);
      this.time.at(sentAt, () => {
        this.probe(edge, target, false);
        this.probeLoop(edge, target, this.o.intervalMs);
      });
    });
  }

  private probe(edge: RegionId, target: RegionId, confirming: boolean): void {
    if (!this.running) return;
    this.probes++;
    const table = this.tables.get(edge)!;
    const timeoutMs = table.probeTimeoutMs(target);
    const sentAt = this.time.nowMs;
    let settled = false;
    let answeredAt: number | undefined;
    const report = (ev: HealthEvent): void => {
      if (!this.running) return;
      const t = table.observe(target, ev, this.time.nowMs);
      if (t) this.options.onTransition?.(edge, t);
      this.sampleOne(edge, target);
      const gone = ev.kind === 'probe-failed' && ev.failure === 'refused';
      if (gone && !confirming) this.time.after(0, () => this.probe(edge, target, true));
    };
    const deliver = (ev: HealthEvent, atMs: number): void => {
      const at = this.runsAt(edge, atMs);
      this.time.at(at, () => {
        answeredAt = at;
        if (!settled) {
          settled = true;
          report(ev.kind === 'probe-ok' ? { kind: 'probe-ok', rttMs: at - sentAt } : ev);
        } else if (ev.kind === 'probe-ok' && at - sentAt <= this.o.maxTimeoutMs) {
          report({ kind: 'probe-ok', rttMs: at - sentAt });
        }
      });
    };
    // The deadline: its timer fires when the edge runs again, and the verdict waits one turn, by
    // which time an answer that arrived during a stall has been read.
    const dueAt = sentAt + timeoutMs;
    const firesAt = this.runsAt(edge, dueAt);
    this.time.at(firesAt, () => {
      this.time.after(0, () => {
        if (settled || (answeredAt !== undefined && answeredAt <= firesAt)) return;
        settled = true;
        report({
          kind: 'probe-failed',
          reason: `no answer in ${timeoutMs} ms`,
          failure: 'timeout',
          lateMs: firesAt - dueAt,
        });
      });
    });
    const out = this.jittered(edge, target);
    if (this.net.isCut(edge, target)) return;
    this.time.after(out, () => {
      if (this.net.isCut(edge, target)) return;
      const back = this.jittered(target, edge);
      if (!this.target(target).alive()) {
        // Nothing listens: the refusal comes straight back.
        deliver({ kind: 'probe-failed', reason: 'ECONNREFUSED', failure: 'refused' }, this.time.nowMs + back);
        return;
      }
      const answersAt = this.runsAt(target, this.time.nowMs) + 0.2;
      this.time.at(answersAt, () => {
        if (!this.target(target).alive() || this.net.isCut(target, edge)) return;
        this.time.after(back, () => {
          if (this.net.isCut(target, edge)) return;
          deliver({ kind: 'probe-ok', rttMs: 0 }, this.time.nowMs);
        });
      });
    });
  }

  private sampleAll(): void {
    for (const edge of this.regions) for (const t of this.regions) this.sampleOne(edge.id, t.id);
  }

  private sampleOne(edge: RegionId, target: RegionId): void {
    const table = this.tables.get(edge)!;
    const good =
      this.target(target).alive() && !this.net.isCut(edge, target) && !this.net.isCut(target, edge);
    const row = table.snapshot().find((s) => s.region === target)!;
    const stall = this.options.stalls.everyMs > 0 ? this.options.stalls.stallMs[1] : 0;
    const base = 2 * Math.max(this.oneWayMs(edge, target), 0.5);
    // Up to an interval to the next probe, `fall` probes one interval apart, the last of them
    // waiting out its deadline, and a stall of the edge on either side.
    const detectionMs =
      (this.o.fall + 1) * this.o.intervalMs +
      Math.max(row.probeTimeoutMs, rtoMs(base, base / 2, this.o)) +
      2 * stall +
      50;
    this.checker.sample(this.time.nowMs, {
      edge,
      target,
      good,
      status: row.status,
      // Held up by the cap, or about to be: the cap is a choice, not a miss.
      held: row.held || (row.status === 'up' && table.atEjectionCap()),
      detectionMs,
    });
  }
}
