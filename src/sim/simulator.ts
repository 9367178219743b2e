/**
 * One simulated run: builds the regions, network, disks, fault schedule and workload from a seed,
 * runs them in virtual time, heals, waits for quiescence, and hands the history to the checkers.
 * Everything random comes from the seed, so the same options give the same run.
 */

import { holders as holdersOf } from '../core/collection.js';
import type { DocState } from '../core/crdt.js';
import { isMeridianError } from '../core/errors.js';
import type { HealthBugs } from '../core/health.js';
import type { DocView, PlantedBugs, ReadOptions, RegionEvent, WriteOptions } from '../core/region.js';
import { loadRegionTable } from '../core/regions.js';
import {
  EDGE_CANCELLED,
  EDGE_DEFAULTS,
  type RoutedRequest,
  type UpstreamOutcome,
} from '../core/routing/index.js';
import type { CommitBatch } from '../core/store.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../core/types.js';
import {
  decodeToken,
  dominates,
  encodeToken,
  joinVersions,
  mergeVersions,
  seqOf,
  type VersionVector,
  versionsEqual,
} from '../core/version.js';
import type { HealthCounts } from './checkers/health.js';
import { ALL_CHECKERS } from './checkers/index.js';
import { inspectCommit, inspectMessage } from './checkers/residency.js';
import { CookieJar, SimEdge, type SimRequest } from './edge.js';
import { type FaultProfile, faultMixFor, faultSchedule, initialSkews } from './faults.js';
import { computeFigures, type Figures } from './figures.js';
import { HealthSim, SIM_HEALTH, STALLS } from './health.js';
import type { History, LocalChange, OpKind, OpRecord, TimedFault, Violation } from './history.js';
import { Network, NO_LINK_FAULTS } from './network.js';
import { Prng } from './random.js';
import { DEFAULT_REPLICATION, RegionProcess } from './region-process.js';
import { fmtMs } from './report.js';
import { isDiskError } from './storage.js';
import { VirtualTime } from './time.js';
import {
  type OpPlan,
  type Session,
  SIM_COLLECTIONS,
  simCollections,
  syncAcksFor,
  Workload,
  workloadSpec,
} from './workload.js';

/** The kv namespace of the records the simulator stores beside resident documents (their "answers"). */
const RESIDENT_ANSWERS_NS = 'sim.answers';

export interface SimOptions {
  seed: number;
  regions: RegionId[];
  durationMs: number;
  /** A fault preset name, or `random` for a mix drawn from the seed (faults.ts). */
  faults: string;
  /** A workload name (workload.ts). */
  workload: string;
  /** Client operations per second across all sessions (offered load). */
  opsPerSec: number;
  bugs?: PlantedBugs;
  /** Deep-freeze stored records, to prove the core never mutates them (slower). */
  freeze?: boolean;
  /** After healing, how long to wait at most for every live region to converge. */
  settleMaxMs?: number;
  sessionsPerRegion?: number;
  /** Run every edge's health checks and the health checker (sim/health.ts); on with a health bug. */
  health?: boolean;
  healthBugs?: HealthBugs;
}

export const DEFAULT_SIM: Omit<SimOptions, 'seed'> = {
  regions: ['us-east-1', 'eu-west-1', 'ap-northeast-1'],
  durationMs: 20_000,
  faults: 'heavy',
  workload: 'mixed',
  opsPerSec: 500,
};

export interface RunResult {
  options: SimOptions;
  history: History;
  violations: Violation[];
  figures: Figures;
  /** Diagnostic lines from the region processes (failed applies), deterministic. */
  notes: string[];
  /** What the health checker saw, when the run had edges' health checks (`health`). */
  health?: HealthCounts;
  /** The fault mix the run used (a preset, or the one `random` drew for this seed). */
  faultMix: FaultProfile;
  /** Commits the simulated disks failed, and torn ones (told they failed; `landed` reached the disk). */
  disk: { failed: number; torn: number; tornLanded: number };
}

const SYNC_TIMEOUT_MS = 1500;
/** How long a region whose store failed a commit is down before its supervisor has restarted it. */
const STORE_RESTART_MS = 200;
/** Options of a read or write that has none: one shared object (the core only reads them). */
const NO_OPTIONS: Readonly<ReadOptions & WriteOptions> = Object.freeze({});

/**
 * Runs one seed.
 *
 * @example
 * const r = await simulate({ ...DEFAULT_SIM, seed: 7 });
 * if (r.violations.length > 0) console.log(r.violations[0]);
 */
export async function simulate(options: SimOptions): Promise<RunResult> {
  // Refusals (421, 503, 504) are expected by the thousand; their stack traces are never read.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await new Simulation(options).run();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

interface SessionState {
  session: Session;
  /** The user's cookies (the edge's sticky and version cookies), kept as a browser keeps them. */
  cookies: CookieJar;
  /** The request the user is waiting on (one at a time). */
  flight: Flight | undefined;
  version: VersionVector;
  /** The Meridian-Version token the session carries, and what it decodes to (sent as minVersion). */
  token: string | undefined;
  /** The options of the session's reads: its token's version once it has one (built when it changes). */
  readOptions: ReadOptions;
  /** The version cookie's token its edge last sent for it, and the read options it decodes to. */
  cookieToken: string | undefined;
  cookieReadOptions: ReadOptions;
  /** When the session's next operation is due: arrivals keep their pace while an operation waits. */
  nextAtMs: number;
  /** Issues the session's next operation (built once: scheduled after every operation). */
  next: () => void;
}

/** One user request through its edge: each region it is sent to is one op of the history. */
interface Flight {
  plan: OpPlan;
  edge: SimEdge;
  routed: RoutedRequest;
  /** The op of the region the edge is waiting on (an earlier one's late answer is ignored). */
  op: OpRecord | undefined;
  /** How long the edge waits for a region's answer before it gives up on it. */
  budgetMs: number;
  /** The edge's deadline for the current op (cancelled when its outcome arrives first). */
  deadline: ReturnType<VirtualTime['after']> | undefined;
}

/** The method a user sends for each kind of operation (POSTs carry no idempotency key: no retry). */
const METHODS: Record<OpKind, SimRequest['method']> = {
  get: 'GET',
  put: 'PUT',
  delete: 'DELETE',
  increment: 'POST',
  add: 'POST',
  remove: 'POST',
  clear: 'DELETE',
};

class Simulation {
  readonly time = new VirtualTime();
  readonly rng: Prng;
  readonly net: Network;
  readonly regions: RegionInfo[];
  readonly collections: CollectionSpec[];
  readonly specs = new Map<string, CollectionSpec>();
  readonly procs = new Map<RegionId, RegionProcess>();
  readonly history: History;
  readonly workload: Workload;
  private readonly fifo = new Map<RegionId, OpRecord[]>();
  private readonly inflight = new Map<RegionId, Set<OpRecord>>();
  private readonly sessions: SessionState[] = [];
  readonly lagMs = new Map<string, number[]>();
  private readonly lagByLink = new Map<RegionId, Map<RegionId, number[]>>();
  readonly counts = { conflicts: 0, clockSkew: 0, syncTimeouts: 0, snapshots: 0, clientTimeouts: 0 };
  readonly notes: string[] = [];
  private readonly schedule: TimedFault[];
  private readonly health: HealthSim;
  private readonly healthChecked: boolean;
  /** One virtual edge per client region. */
  private readonly edges = new Map<RegionId, SimEdge>();
  private readonly pathRng: Prng;
  private readonly oneWayMs: (a: RegionId, b: RegionId) => number;
  /** When the edges have probed every region once and users start. */
  private readonly edgeReadyMs: number;
  private readonly baseLink;
  private readonly mix: FaultProfile;

  constructor(readonly options: SimOptions) {
    const o = options;
    if (o.regions.length === 0) throw new Error('at least one region');
    if (new Set(o.regions).size !== o.regions.length) throw new Error('regions must be distinct');
    this.rng = new Prng(o.seed >>> 0);
    const table = loadRegionTable();
    this.regions = o.regions.map((id) => {
      const r = table.get(id);
      return { id: r.id, lat: r.lat, lon: r.lon };
    });
    this.collections = simCollections(o.regions, SYNC_TIMEOUT_MS, syncAcksFor(o.seed, o.regions.length));
    for (const c of this.collections) this.specs.set(c.name, c);
    const profile = faultMixFor(o.faults, o.seed);
    this.mix = profile;
    this.baseLink = profile.link;
    this.net = new Network(this.time, this.rng.fork('network'), (a, b) => table.oneWayMs(a, b), profile.link);
    this.schedule = faultSchedule(profile, o.regions, o.durationMs, this.rng.fork('faults'));
    this.workload = new Workload(
      workloadSpec(o.workload),
      o.regions,
      this.collections,
      this.rng.fork('workload'),
      // Enough sessions that the offered rate holds while some wait on slow answers (sync acks,
      // token waits behind a partition): about one operation per session every 150-300 ms.
      o.sessionsPerRegion ?? Math.max(8, Math.ceil(o.opsPerSec / o.regions.length / 6)),
    );
    this.history = {
      regions: [...o.regions],
      collections: this.collections,
      ops: [],
      changes: new Map(o.regions.map((r) => [r, []])),
      faults: [],
      lost: new Map(),
      maxDurable: new Map(o.regions.map((r) => [r, {}])),
      residencyBreaches: [],
      final: [],
      quiesced: false,
      endAtMs: 0,
    };
    const skews = initialSkews(profile, o.regions, this.rng.fork('skew'));
    for (const r of o.regions) {
      const proc = new RegionProcess(r, {
        time: this.time,
        net: this.net,
        rng: this.rng.fork(`region-${r}`),
        regions: this.regions,
        collections: this.collections,
        replication: DEFAULT_REPLICATION,
        bugs: o.bugs ?? {},
        freeze: o.freeze ?? false,
        syncTimeoutMs: SYNC_TIMEOUT_MS,
        maxOffsetMs: 500,
        onDurable: (region, batch, before) => this.onDurable(region, batch, before),
        onSubmit: (region, batch) => this.onSubmit(region, batch),
        onEvent: (region, e) => this.onEvent(region, e),
        log: (line) => this.note(line),
      });
      proc.skew.ms = skews.get(r) ?? 0;
      proc.diskFaults.commitFailRate = profile.commitFailRate;
      this.procs.set(r, proc);
      this.fifo.set(r, []);
      this.inflight.set(r, new Set());
    }
    this.net.onDeliver = (env) => this.procs.get(env.to)?.receive(env);
    this.net.onSend = (env) => inspectMessage(this.history, env, this.time.nowMs);
    this.healthChecked = o.health === true || Object.keys(o.healthBugs ?? {}).length > 0;
    // Always: the edges route on its tables; its checker is only reported with `health`.
    this.health = new HealthSim(
      this.time,
      this.rng.fork('health'),
      this.regions,
      (a, b) => table.oneWayMs(a, b),
      this.net,
      (r) => ({ alive: () => this.procs.get(r)?.status === 'up' }),
      {
        settings: SIM_HEALTH,
        stalls: STALLS[o.faults] ?? STALLS.heavy!,
        bugs: o.healthBugs ?? {},
        sampleEveryMs: 50,
        onTransition: (edge, t) => {
          if (t.to === 'down') this.cancelRequestsTo(edge, t.region);
        },
      },
    );
    const edgeRng = this.rng.fork('edges');
    for (const r of o.regions) {
      this.edges.set(r, new SimEdge(r, this.health.table(r), this.time, edgeRng.fork(r)));
    }
    this.pathRng = edgeRng.fork('paths');
    this.oneWayMs = (a, b) => table.oneWayMs(a, b);
    // The edge answers nobody before its first probe round (as startEdge waits for it).
    let farthestMs = 0;
    for (const a of o.regions)
      for (const b of o.regions) farthestMs = Math.max(farthestMs, table.oneWayMs(a, b));
    this.edgeReadyMs = SIM_HEALTH.intervalMs + 2 * farthestMs + 10;
  }

  /**
   * A put's options: none (users name no home: the lab's traffic and the edge send none), and for
   * the resident collection a kv record about the document beside it (as a stored idempotency answer
   * is), so that the residency checker sees kv records travel.
   */
  private putOptions(collection: string, key: string, value: string): WriteOptions {
    if (collection !== SIM_COLLECTIONS.resident) return NO_OPTIONS;
    return { kv: [{ ns: RESIDENT_ANSWERS_NS, key: `${key}@${value}`, value: { collection, key, value } }] };
  }

  private note(line: string): void {
    if (this.notes.length < 200) this.notes.push(`${fmtMs(this.time.nowMs)} ${line}`);
  }

  async run(): Promise<RunResult> {
    for (const p of this.procs.values()) await p.start();
    for (const f of this.schedule) this.time.at(f.atMs, () => this.applyFault(f.fault));
    const thinkMeanMs = (this.workload.sessions.length * 1000) / this.options.opsPerSec;
    for (const session of this.workload.sessions) {
      const st: SessionState = {
        session,
        cookies: new CookieJar(),
        flight: undefined,
        version: {},
        token: undefined,
        readOptions: NO_OPTIONS,
        cookieToken: undefined,
        cookieReadOptions: NO_OPTIONS,
        nextAtMs: this.edgeReadyMs + session.rng.exp(thinkMeanMs),
        next: () => this.nextOp(st),
      };
      this.sessions.push(st);
      this.time.at(st.nextAtMs, st.next);
    }
    this.health.start();
    await this.time.runUntil(this.options.durationMs);
    await this.settle();
    this.health.stop();
    this.history.endAtMs = this.time.nowMs;
    // Anything still unanswered (a client would have given up) has an unknown outcome.
    for (const set of this.inflight.values()) {
      for (const op of set) {
        op.result = 'indefinite';
        op.errorCode = 'no_answer';
        op.endAtMs = this.time.nowMs;
        this.counts.clientTimeouts++;
      }
      set.clear();
    }
    for (const st of this.sessions) {
      const op = st.flight?.op;
      if (op?.result === 'pending') {
        // Still on the network between the edge and a region.
        op.result = 'indefinite';
        op.errorCode = 'no_answer';
        op.endAtMs = this.time.nowMs;
        this.counts.clientTimeouts++;
      }
      st.flight = undefined;
    }
    for (const p of this.procs.values()) {
      if (p.status === 'up' && p.core) {
        const disk = p.disk;
        this.history.final.push({
          region: p.id,
          applied: p.core.version,
          docs: disk.docs,
          log: () => disk.allChanges(),
          kv: () => disk.kv.values(),
        });
      }
    }
    const violations: Violation[] = [];
    for (const c of ALL_CHECKERS) violations.push(...c.check(this.history));
    if (this.healthChecked) violations.push(...this.health.violations());
    for (const op of this.history.ops) {
      if (op.result === 'error') {
        violations.push({
          checker: 'no-unexpected-errors',
          message: `op #${op.id} (${op.kind} ${op.collection}/${op.key} at ${op.region}) failed unexpectedly: ${op.errorCode}`,
          atMs: op.endAtMs,
          collection: op.collection,
          key: op.key,
          ops: [op.id],
        });
      }
    }
    const figures = computeFigures(this.history, {
      lagMs: this.lagMs,
      counts: this.counts,
      network: this.net.stats,
      eventsRun: this.time.eventsRun,
      durationMs: this.options.durationMs,
    });
    const disk = { failed: 0, torn: 0, tornLanded: 0 };
    for (const p of this.procs.values()) {
      disk.failed += p.diskFaults.stats.failed;
      disk.torn += p.diskFaults.stats.torn;
      disk.tornLanded += p.diskFaults.stats.tornLanded;
    }
    const result: RunResult = {
      options: this.options,
      history: this.history,
      violations,
      figures,
      notes: this.notes,
      faultMix: this.mix,
      disk,
    };
    if (this.healthChecked) result.health = { ...this.health.checker.counts };
    return result;
  }

  /** Runs on after the faults end until every live region has the same version, or gives up. */
  private async settle(): Promise<void> {
    const maxMs = this.options.settleMaxMs ?? 60_000;
    const endMs = this.time.nowMs + maxMs;
    let quietChecks = 0;
    let done = false;
    const check = (): void => {
      const live = [...this.procs.values()].filter((p) => p.status !== 'lost');
      const busy = [...this.inflight.values()].some((s) => s.size > 0) || this.sessions.some((s) => s.flight);
      const up = live.every((p) => p.status === 'up' && p.core);
      const v0 = live[0]?.core?.version ?? {};
      const same = up && live.every((p) => versionsEqual(p.core!.version, v0));
      quietChecks = same && !busy ? quietChecks + 1 : 0;
      if (quietChecks >= 2) done = true;
      else this.time.after(250, check);
    };
    this.time.after(250, check);
    await this.time.runUntil(endMs, () => done);
    this.history.quiesced = done;
  }

  // ------------------------------------------------------------------ faults

  private recordFault(fault: TimedFault['fault']): void {
    this.history.faults.push({ atMs: this.time.nowMs, fault });
  }

  private applyFault(f: TimedFault['fault']): void {
    const proc = 'region' in f ? this.procs.get(f.region) : undefined;
    switch (f.kind) {
      case 'crash':
        if (proc?.status !== 'up') return;
        this.recordFault(f);
        proc.crash();
        this.killClientOps(proc.id);
        this.time.after(f.downMs, () => this.applyFault({ kind: 'restart', region: proc.id }));
        return;
      case 'restart':
        if (proc?.status !== 'down') return;
        this.recordFault(f);
        void proc.start();
        return;
      case 'lose':
        if (!proc || proc.status === 'lost') return;
        this.recordFault(f);
        proc.lose();
        this.killClientOps(proc.id);
        this.history.lost.set(proc.id, this.time.nowMs);
        return;
      case 'partition':
        this.recordFault(f);
        this.net.partition(f.from, f.to, f.oneWay);
        this.time.after(f.durationMs, () =>
          this.applyFault({ kind: 'heal-partition', from: f.from, to: f.to, oneWay: f.oneWay }),
        );
        return;
      case 'heal-partition':
        this.recordFault(f);
        this.net.heal(f.from, f.to, f.oneWay);
        return;
      case 'skew':
        if (!proc || proc.status === 'lost') return;
        this.recordFault(f);
        proc.skew.ms = f.skewMs;
        return;
      case 'slow-disk':
        if (!proc || proc.status === 'lost') return;
        this.recordFault(f);
        proc.slowFsyncMs = f.fsyncMs;
        proc.slowUntilMs = this.time.nowMs + f.durationMs;
        return;
      case 'compact':
        if (proc?.status !== 'up') return;
        this.recordFault(f);
        void proc.compactNow(f.keep, f.force);
        return;
      case 'delay-spike':
        this.recordFault(f);
        this.net.spike(f.region, f.extraMs);
        this.time.after(f.durationMs, () => this.net.unspike(f.region, f.extraMs));
        return;
      case 'disk-fail':
        if (!proc || proc.status === 'lost') return;
        this.recordFault(f);
        proc.diskFaults.failRate = f.failRate;
        proc.diskFaults.failUntilMs = this.time.nowMs + f.durationMs;
        return;
      case 'torn-fsync':
        if (!proc || proc.status === 'lost') return;
        this.recordFault(f);
        proc.diskFaults.tornUntilMs = this.time.nowMs + f.durationMs;
        return;
      case 'heal-all':
        this.recordFault(f);
        this.net.healAll();
        this.net.faults = { ...NO_LINK_FAULTS, jitterFrac: this.baseLink.jitterFrac };
        for (const p of this.procs.values()) {
          p.slowUntilMs = 0;
          p.diskFaults.clear();
          if (p.status === 'down') void p.start();
        }
        return;
    }
  }

  /**
   * A crashed region answers nobody: its operations in flight end with an unknown outcome, and the
   * edges that sent them see their connections reset.
   */
  private killClientOps(region: RegionId): void {
    const set = this.inflight.get(region)!;
    for (const op of set) {
      op.result = 'indefinite';
      op.errorCode = 'crashed';
      op.endAtMs = this.time.nowMs;
      this.answerBack(this.sessions[op.session]!, op, { kind: 'error', reason: 'ECONNRESET' }, undefined);
    }
    set.clear();
    this.fifo.set(region, []);
  }

  // ------------------------------------------------------------------ clients

  /**
   * A user sends its next request to its edge (the edge of its region, or of the one it roams to),
   * with only what the lab's users send: method, path, body, its cookies and, for a session that
   * carries it, its version token. The edge decides where it goes (sim/edge.ts).
   */
  private nextOp(st: SessionState): void {
    if (this.time.nowMs >= this.options.durationMs) return;
    const plan = this.workload.next(st.session);
    const edge = this.edges.get(plan.region)!;
    const hasMinVersion = plan.kind === 'get' && st.session.token && Object.keys(st.version).length > 0;
    const routed = edge.route({
      method: METHODS[plan.kind],
      hasIdempotencyKey: false,
      cookies: st.cookies,
      hasMinVersion,
    });
    // The edge's budget for one region's answer: a read with a token may also wait for it there.
    const waits = hasMinVersion || routed.cookieToken !== undefined;
    const budgetMs = EDGE_DEFAULTS.headersTimeoutMs + (waits ? EDGE_DEFAULTS.nodeMaxWaitMs : 0);
    const flight: Flight = { plan, edge, routed, op: undefined, budgetMs, deadline: undefined };
    st.flight = flight;
    this.dispatch(st, flight, routed.attempt.first().region, undefined);
  }

  /**
   * An edge ejected `region`: the idempotent requests it is waiting on there are taken back and
   * retried elsewhere at once (as the edge server does), not left to run out their budget.
   */
  private cancelRequestsTo(edge: RegionId, region: RegionId): void {
    for (const st of this.sessions) {
      const f = st.flight;
      const op = f?.op;
      if (!f || !op || f.edge.id !== edge || op.region !== region || !f.routed.attempt.idempotent) continue;
      if (op.result === 'pending') {
        op.result = 'indefinite';
        op.errorCode = 'cancelled';
        op.endAtMs = this.time.nowMs;
        this.inflight.get(region)!.delete(op);
      }
      this.atEdge(st, op, { kind: 'error', reason: EDGE_CANCELLED }, undefined);
    }
  }

  /** The user has its answer, or an error from the edge: it thinks, then sends its next request. */
  private afterOp(st: SessionState): void {
    st.flight = undefined;
    const thinkMeanMs = (this.workload.sessions.length * 1000) / this.options.opsPerSec;
    st.nextAtMs = Math.max(this.time.nowMs, st.nextAtMs + st.session.rng.exp(thinkMeanMs));
    this.time.at(st.nextAtMs, st.next);
  }

  /** One way between an edge and a region over the simulated WAN, with the links' jitter. */
  private pathMs(from: RegionId, to: RegionId): number {
    const base = from === to ? 0.5 : this.oneWayMs(from, to);
    const j = this.net.faults.jitterFrac;
    return Math.max(0.25, base * (1 + j * (2 * this.pathRng.next() - 1)));
  }

  /**
   * The edge sends the request to `region`: one op of the history. It arrives after the path's
   * delay unless the path is cut; the edge gives up on it after its budget.
   */
  private dispatch(st: SessionState, flight: Flight, region: RegionId, replayOf: number | undefined): void {
    const plan = flight.plan;
    const op: OpRecord = {
      id: this.history.ops.length,
      session: st.session.id,
      token: st.session.token,
      region,
      kind: plan.kind,
      collection: plan.collection,
      key: plan.key,
      // Every field present from the start: one object shape for all records keeps access fast.
      value: undefined,
      by: plan.by,
      members: plan.members,
      home: plan.home,
      startAtMs: this.time.nowMs,
      endAtMs: -1,
      result: 'pending',
      errorCode: undefined,
      replayRegion: undefined,
      answer: undefined,
      answerVersion: undefined,
      change: undefined,
      holdersAtAck: undefined,
      replayOf,
    };
    this.history.ops.push(op);
    flight.op = op;
    const edge = flight.edge.id;
    flight.edge.dispatched(region);
    flight.deadline = this.time.after(flight.budgetMs, () => {
      if (st.flight !== flight || flight.op !== op) return;
      if (op.result === 'pending') {
        op.result = 'indefinite';
        op.errorCode = 'no_answer';
        op.endAtMs = this.time.nowMs;
        this.inflight.get(region)!.delete(op);
      }
      this.atEdge(st, op, { kind: 'error', reason: `no answer in ${flight.budgetMs} ms` }, undefined);
    });
    if (this.net.isCut(edge, region)) return;
    this.time.after(this.pathMs(edge, region), () => {
      if (!this.net.isCut(edge, region)) this.arrive(st, flight, op);
    });
  }

  /** The answer travels back to the edge, unless the path is cut (then the edge's budget runs out). */
  private answerBack(
    st: SessionState,
    op: OpRecord,
    outcome: UpstreamOutcome,
    view: DocView | undefined,
  ): void {
    const flight = st.flight;
    if (!flight || flight.op !== op) return;
    const edge = flight.edge.id;
    if (this.net.isCut(op.region, edge)) return;
    this.time.after(this.pathMs(op.region, edge), () => {
      if (!this.net.isCut(op.region, edge)) this.atEdge(st, op, outcome, view);
    });
  }

  /** The edge has `op`'s outcome: it replays, retries elsewhere, or answers the user. */
  private atEdge(st: SessionState, op: OpRecord, outcome: UpstreamOutcome, view: DocView | undefined): void {
    const flight = st.flight;
    if (!flight || flight.op !== op) return;
    flight.op = undefined;
    if (flight.deadline) this.time.cancel(flight.deadline);
    const step = flight.edge.next(flight.routed, op.region, outcome, op.errorCode);
    if (step.kind === 'send') {
      this.dispatch(st, flight, step.region, op.id);
      return;
    }
    if (step.kind === 'deliver' && outcome.kind === 'answer' && flight.routed.write) {
      // The region's Meridian-Version, as the edge reads it for the version cookie.
      const token = view ? encodeToken(view.version) : undefined;
      flight.edge.deliver(flight.routed, outcome.status, token, st.cookies);
    }
    this.afterOp(st);
  }

  /** The request reaches `op.region`: the node runs it (or refuses the connection when it is down). */
  private arrive(st: SessionState, flight: Flight, op: OpRecord): void {
    if (op.result !== 'pending') return;
    const plan = flight.plan;
    const proc = this.procs.get(op.region)!;
    const core = proc.core;
    if (proc.status !== 'up' || !core) {
      op.result = 'unavailable';
      op.endAtMs = this.time.nowMs;
      this.answerBack(st, op, { kind: 'error', reason: 'ECONNREFUSED' }, undefined);
      return;
    }
    const owner = proc.owner;
    let p: Promise<DocView | undefined>;
    const fifo = this.fifo.get(proc.id)!;
    switch (plan.kind) {
      case 'put': {
        const value = `v${op.id}`;
        op.value = value;
        p = core.put(plan.collection, plan.key, value, this.putOptions(plan.collection, plan.key, value));
        break;
      }
      case 'delete':
        fifo.push(op);
        p = core.delete(plan.collection, plan.key);
        break;
      case 'increment':
        fifo.push(op);
        p = core.increment(plan.collection, plan.key, plan.by ?? 1);
        break;
      case 'add':
        fifo.push(op);
        p = core.addMembers(plan.collection, plan.key, plan.members ?? []);
        break;
      case 'remove':
        fifo.push(op);
        p = core.removeMembers(plan.collection, plan.key, plan.members ?? []);
        break;
      case 'clear':
        fifo.push(op);
        p = core.delete(plan.collection, plan.key);
        break;
      case 'get': {
        p = core.get(plan.collection, plan.key, this.readOptions(st, flight));
        break;
      }
    }
    const inflight = this.inflight.get(proc.id)!;
    inflight.add(op);
    p.then(
      (view) => {
        if (op.result !== 'pending' || !owner.alive) return;
        inflight.delete(op);
        this.finishOk(st, op, view);
        this.answerBack(st, op, { kind: 'answer', status: 200, replayHeader: undefined }, view);
      },
      (e: unknown) => {
        if (!owner.alive) return;
        if (op.result !== 'pending') {
          // The edge gave up on it first; a change that will not come must not wait in the fifo.
          if (!(isMeridianError(e) && e.code === 'sync_timeout')) this.dropFromFifo(op);
          return;
        }
        inflight.delete(op);
        this.finishError(op, e);
        const status = isMeridianError(e) ? e.status : 500;
        const replay = isMeridianError(e) ? e.details.replayRegion : undefined;
        const replayHeader = replay ? `region=${replay}` : undefined;
        this.answerBack(st, op, { kind: 'answer', status, replayHeader }, undefined);
      },
    );
  }

  /**
   * A read's version: the session's own token when it carries one, else the one the edge took from
   * the version cookie (each through its wire form, as a client's would be).
   */
  private readOptions(st: SessionState, flight: Flight): ReadOptions {
    if (st.session.token) {
      if (st.token === undefined && Object.keys(st.version).length > 0) {
        st.token = encodeToken(st.version);
        st.readOptions = { minVersion: decodeToken(st.token) };
      }
      return st.readOptions;
    }
    const t = flight.routed.cookieToken;
    if (t === undefined) return NO_OPTIONS;
    // Decoded once per cookie value: the cookie changes only when the session writes.
    if (t !== st.cookieToken) {
      st.cookieToken = t;
      st.cookieReadOptions = { minVersion: decodeToken(t) };
    }
    return st.cookieReadOptions;
  }

  private finishOk(st: SessionState, op: OpRecord, view: DocView | undefined): void {
    op.result = 'ok';
    op.endAtMs = this.time.nowMs;
    op.answer = view?.value;
    if (view) {
      op.answerVersion = view.version;
      if (st.session.token && !dominates(st.version, view.version)) {
        st.version = joinVersions(st.version, view.version);
        st.token = undefined; // re-encoded before the next read
      }
    }
    const spec = this.specs.get(op.collection);
    if (op.kind !== 'get' && spec?.replication.mode === 'sync' && op.change) {
      const { origin, seq } = op.change;
      op.holdersAtAck = holdersOf(spec, this.history.regions).filter(
        (r) => seqOf(this.history.maxDurable.get(r) ?? {}, origin) >= seq,
      );
    }
  }

  private dropFromFifo(op: OpRecord): void {
    const fifo = this.fifo.get(op.region)!;
    const i = fifo.indexOf(op);
    if (i >= 0) fifo.splice(i, 1);
  }

  private finishError(op: OpRecord, e: unknown): void {
    op.endAtMs = this.time.nowMs;
    if (isDiskError(e)) {
      // The node answers 500: the client cannot know whether the write happened (a torn commit's
      // may have). An op whose change never reached the disk no longer waits for it.
      op.result = 'indefinite';
      op.errorCode = 'disk_error';
      const fifo = this.fifo.get(op.region);
      const i = fifo ? fifo.indexOf(op) : -1;
      if (i >= 0) fifo!.splice(i, 1);
      return;
    }
    if (!isMeridianError(e)) {
      op.result = 'error';
      op.errorCode = `exception: ${(e as Error)?.message ?? String(e)}`;
      return;
    }
    op.errorCode = e.code;
    if (e.code === 'sync_timeout') {
      op.result = 'indefinite';
      return;
    }
    // Refused before anything was written: no change will match the op.
    this.dropFromFifo(op);
    if (e.code === 'misdirected' || e.code === 'not_caught_up' || e.code === 'clock_skew') {
      // 421/503 naming a region that can answer (the edge replays there).
      op.result = 'refused';
      if (e.details.replayRegion) op.replayRegion = e.details.replayRegion;
    } else if (e.code === 'unavailable') {
      // 503 from a core that stopped (its store failed a commit; the process is restarting).
      op.result = 'unavailable';
    } else op.result = 'error';
  }

  // ------------------------------------------------------------------ observation

  private onSubmit(region: RegionId, batch: CommitBatch): void {
    inspectCommit(this.history, region, batch, this.time.nowMs);
  }

  private onEvent(region: RegionId, e: RegionEvent): void {
    switch (e.type) {
      case 'conflict':
        this.counts.conflicts++;
        return;
      case 'clock-skew':
        this.counts.clockSkew++;
        return;
      case 'sync-timeout':
        this.counts.syncTimeouts++;
        return;
      case 'snapshot-applied':
        this.counts.snapshots++;
        this.note(`${region}: applied a snapshot from ${e.from} (${e.docs} docs)`);
        return;
      case 'store-failed':
        // The node answers the failed batch, exits, and its supervisor restarts it from disk.
        this.note(`${region}: the store failed a commit (${e.message}); the process restarts`);
        this.time.after(0, () => this.applyFault({ kind: 'crash', region, downMs: STORE_RESTART_MS }));
        return;
      default:
        return;
    }
  }

  /** A commit reached the disk of `region`: record its own changes, match them to client ops, time the others. */
  private onDurable(region: RegionId, batch: CommitBatch, before: VersionVector): void {
    const h = this.history;
    h.maxDurable.set(region, joinVersions(h.maxDurable.get(region) ?? {}, batch.applied));
    const now = this.time.nowMs;
    let running: Record<RegionId, number> | undefined;
    const mine = h.changes.get(region)!;
    let lagOrigin: RegionId | undefined;
    let lagChanges: LocalChange[] | undefined;
    let lagSamples: number[] | undefined;
    for (const c of batch.changes) {
      if (c.origin === region) {
        if (c.payload.kind === 'doc') {
          const delta: DocState = c.payload.delta;
          const rec: LocalChange = {
            origin: c.origin,
            seq: c.seq,
            hlc: c.hlc,
            collection: c.payload.collection,
            key: c.payload.key,
            delta,
            committedAtMs: now,
          };
          if (delta.t === 'set') {
            running ??= runningVersion(before, batch, c);
            rec.causalPast = { ...running };
            // A snapshot merged in this batch moved the version without a change: bound it from above.
            if (snapshotInBatch(before, batch)) rec.causalPastMax = mergeVersions(running, batch.applied);
          }
          const op = this.matchOp(region, delta, c.payload.collection, c.payload.key);
          if (op) {
            op.change = { origin: c.origin, seq: c.seq, hlc: c.hlc };
            rec.op = op.id;
          }
          mine[c.seq - 1] = rec;
        }
      } else {
        if (c.origin !== lagOrigin) {
          // A batch's changes mostly come from one origin: look its lists up when it changes.
          lagOrigin = c.origin;
          lagChanges = h.changes.get(c.origin);
          lagSamples = undefined;
        }
        const rec = lagChanges?.[c.seq - 1];
        if (rec) {
          lagSamples ??= this.lagSamples(c.origin, region);
          lagSamples.push(now - rec.committedAtMs);
        }
      }
      if (running) running[c.origin] = c.seq;
    }
  }

  /** The lag samples of one directed link (origin > receiver), without building a key per change. */
  private lagSamples(origin: RegionId, region: RegionId): number[] {
    let byReceiver = this.lagByLink.get(origin);
    if (!byReceiver) {
      byReceiver = new Map();
      this.lagByLink.set(origin, byReceiver);
    }
    let a = byReceiver.get(region);
    if (!a) {
      a = [];
      byReceiver.set(region, a);
      this.lagMs.set(`${origin}>${region}`, a);
    }
    return a;
  }

  /**
   * The client operation a local change came from. A put names its op in its value. Other changes
   * are matched to the oldest waiting op of the same collection, key and kind: not simply the
   * oldest op, because a mutation refused inside a batch (the clock verdict can turn between two
   * mutations of one batch) is answered only after the batch's other changes are durable, so it
   * still waits here when they are matched (seed 6019, random faults, 20 s).
   */
  private matchOp(region: RegionId, delta: DocState, collection: string, key: string): OpRecord | undefined {
    if (delta.t === 'reg' && !delta.deleted && typeof delta.value === 'string') {
      // A put writes `v<op id>`: the value names its op, so no map of every value is kept.
      const op = delta.value.startsWith('v') ? this.history.ops[Number(delta.value.slice(1))] : undefined;
      return op?.value === delta.value ? op : undefined;
    }
    const fifo = this.fifo.get(region)!;
    const i = fifo.findIndex(
      (o) =>
        o.key === key &&
        o.collection === collection &&
        (o.kind === 'increment' ? 'counter' : o.kind === 'delete' ? 'reg' : 'set') === delta.t,
    );
    if (i < 0) {
      throw new Error(
        `sim: a ${delta.t} change of ${collection}/${key} at ${region} matches no client operation`,
      );
    }
    const op = fifo[i]!;
    fifo.splice(i, 1);
    return op;
  }
}

/** Whether the batch's version moved further than its changes explain (a snapshot merged in it). */
function snapshotInBatch(before: VersionVector, batch: CommitBatch): boolean {
  const v: Record<RegionId, number> = { ...before };
  for (const x of batch.changes) v[x.origin] = x.seq;
  return !versionsEqual(v, batch.applied);
}

/** The version just before `c` within the batch: what was applied before the batch plus earlier changes. */
function runningVersion(
  before: VersionVector,
  batch: CommitBatch,
  c: CommitBatch['changes'][number],
): Record<RegionId, number> {
  const v: Record<RegionId, number> = { ...before };
  for (const x of batch.changes) {
    if (x === c) break;
    v[x.origin] = x.seq;
  }
  return v;
}
