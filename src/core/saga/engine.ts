/**
 * The saga engine: runs sagas step by step, persisting the saga record (a replicated kv record) at
 * every transition so that any crash resumes from the last one; retries with backoff, times out
 * attempts, compensates in reverse order, and marks a saga stuck when a compensation cannot succeed.
 * One engine per region; in choreography the record itself is the event that wakes the next region.
 */
import { createHash } from 'node:crypto';
import type { Change, KvEntry } from '../change.js';
import { isMeridianError, MeridianError } from '../errors.js';
import type { Clock, Random, TimerHandle, Timers } from '../ports.js';
import type { KvRead } from '../region.js';
import type { KvRecord } from '../store.js';
import type { Json, RegionId } from '../types.js';
import {
  DEFAULT_RETRY,
  describeError,
  isPermanent,
  type RetryPolicy,
  retryDelayMs,
  StepTimeout,
} from './retry.js';
import {
  type HistoryEntry,
  isFinal,
  type SagaDefinition,
  type SagaMode,
  type SagaRecord,
  type SagaStatus,
  type SagaStep,
  type StepContext,
  type StepRecord,
} from './types.js';

export const SAGA_NS = 'saga';
const MAX_HISTORY = 200;

/** The kv access the engine needs; RegionCore provides it. */
export interface SagaKv {
  writeKv(entries: KvEntry[] | ((read: KvRead) => Promise<KvEntry[]>)): Promise<unknown>;
  getKv(ns: string, key: string): Promise<KvRecord | undefined>;
  listKv(ns: string): Promise<KvRecord[]>;
}

export type SagaEvent =
  | { type: 'transition'; saga: SagaRecord; entry: HistoryEntry }
  | { type: 'settled'; saga: SagaRecord };

export interface SagaEngineOptions {
  region: RegionId;
  kv: SagaKv;
  clock: Clock;
  timers: Timers;
  random: Random;
  definitions?: SagaDefinition[];
  retry?: Partial<RetryPolicy>;
  /** How long a completed or compensated saga is kept before its record is purged (default 7 days; stuck ones stay). */
  retentionMs?: number;
  onEvent?: (e: SagaEvent) => void;
  bugs?: SagaBugs;
}

/** Deliberate defects, switched on only by the simulator's tests that prove a checker catches them. */
export interface SagaBugs {
  /** A step whose outcome is unknown is taken as failed without settling it (no fence on its key). */
  settleWithoutFence?: boolean;
}

export const DEFAULT_SAGA_RETENTION_MS = 7 * 24 * 3600 * 1000;

export type SagaCounts = Record<SagaStatus, number>;

/** Raised inside a stopped engine so that its abandoned runs write nothing more (a crash). */
class EngineStopped extends Error {
  constructor() {
    super('saga engine stopped');
    this.name = 'EngineStopped';
  }
}

/** A deterministic saga id from the caller's idempotency key, so a retry elsewhere names the same saga. */
export function sagaIdFor(type: string, scope: string, idempotencyKey: string): string {
  const h = createHash('sha256').update(`${type}\u0000${scope}\u0000${idempotencyKey}`).digest('base64url');
  return `sg_${h.slice(0, 22)}`;
}

/**
 * @example
 * const engine = new SagaEngine({ region: 'us-east-1', kv: core, clock, timers, random,
 *   definitions: [transferSaga(ops)] });
 * core.subscribe((changes) => engine.onCommitted(changes)); // choreography
 * await engine.resume();                                    // after a restart
 * const saga = await engine.start('transfer', { from: 'a', to: 'b', amount: 5 }, { id });
 */
export class SagaEngine {
  readonly region: RegionId;
  readonly retry: RetryPolicy;
  private readonly defs = new Map<string, SagaDefinition>();
  private readonly active = new Map<string, Promise<void>>();
  private readonly sleeping = new Set<{ handle: TimerHandle; wake: () => void }>();
  private stopped = false;

  constructor(private readonly opts: SagaEngineOptions) {
    this.region = opts.region;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    for (const d of opts.definitions ?? []) this.register(d);
  }

  register(def: SagaDefinition): void {
    if (def.steps.length === 0) throw new Error(`saga '${def.type}' has no steps`);
    this.defs.set(def.type, def);
  }

  definition(type: string): SagaDefinition {
    const d = this.defs.get(type);
    if (!d) throw new MeridianError('not_found', `unknown saga type '${type}'`);
    return d;
  }

  /**
   * Persists a new saga (unless one with this id exists: then returns it) and starts running it.
   * `extra` entries commit in the same change (the idempotency record of the request that started it).
   */
  async start(
    type: string,
    input: Json,
    options: {
      id: string;
      mode?: SagaMode;
      extra?: (saga: SagaRecord) => KvEntry[];
      /** Runs inside the transaction first; may throw to abort (an idempotency re-check). */
      guard?: (read: KvRead) => Promise<void>;
    },
  ): Promise<{ saga: SagaRecord; created: boolean }> {
    const def = this.definition(type);
    def.validate?.(input);
    const now = this.opts.clock.nowMs();
    const fresh: SagaRecord = {
      id: options.id,
      type,
      mode: options.mode ?? def.mode ?? 'orchestration',
      input,
      status: 'running',
      steps: def.steps.map((s) => ({
        name: s.name,
        status: 'pending',
        attempts: 0,
        compensationAttempts: 0,
      })),
      owner: this.region,
      createdAtMs: now,
      updatedAtMs: now,
      history: [{ atMs: now, region: this.region, event: 'started' }],
    };
    let existing: SagaRecord | undefined;
    await this.opts.kv.writeKv(async (read) => {
      await options.guard?.(read);
      existing = asSaga((await read(SAGA_NS, options.id))?.value);
      if (existing) return [];
      const extra = (options.extra?.(fresh) ?? []).map((e) =>
        e.collection === undefined && def.collection !== undefined ? { ...e, collection: def.collection } : e,
      );
      return [sagaEntry(fresh, def.collection), ...extra];
    });
    if (existing) return { saga: existing, created: false };
    this.spawn(fresh);
    return { saga: fresh, created: true };
  }

  async get(id: string): Promise<SagaRecord | undefined> {
    return asSaga((await this.opts.kv.getKv(SAGA_NS, id))?.value);
  }

  async list(): Promise<SagaRecord[]> {
    const out: SagaRecord[] = [];
    for (const r of await this.opts.kv.listKv(SAGA_NS)) {
      const s = asSaga(r.value);
      if (s) out.push(s);
    }
    return out;
  }

  async counts(): Promise<SagaCounts> {
    const c: SagaCounts = { running: 0, completed: 0, compensating: 0, compensated: 0, stuck: 0 };
    for (const s of await this.list()) c[s.status]++;
    return c;
  }

  /** Picks up every unfinished saga this region owns (after a restart). Returns how many. */
  async resume(): Promise<number> {
    let n = 0;
    for (const s of await this.list()) {
      if (!isFinal(s.status) && s.owner === this.region && !this.active.has(s.id)) {
        this.spawn(s, 'resumed');
        n++;
      }
    }
    return n;
  }

  /**
   * Choreography: feed every committed change here (RegionCore.subscribe). A saga record handed to
   * this region wakes it.
   */
  onCommitted(changes: readonly Change[]): void {
    if (this.stopped) return;
    for (const c of changes) {
      if (c.origin === this.region) continue;
      const entries =
        c.payload.kind === 'kv' ? c.payload.entries : c.payload.kind === 'doc' ? (c.payload.kv ?? []) : [];
      for (const e of entries) {
        if (e.ns !== SAGA_NS) continue;
        const s = asSaga(e.value);
        if (s && !isFinal(s.status) && s.owner === this.region && !this.active.has(s.id)) {
          // Re-read: a newer record may already have replaced the one in this change.
          this.get(s.id).then(
            (cur) => {
              if (cur && !isFinal(cur.status) && cur.owner === this.region && !this.active.has(cur.id))
                this.spawn(cur, 'handed over');
            },
            // The region is going down; resume() picks the saga up after the restart.
            () => {},
          );
        }
      }
    }
  }

  /** Resolves when the saga has no run in this engine (settled here or handed to another region). */
  async idle(id: string): Promise<void> {
    while (this.active.has(id)) await this.active.get(id);
  }

  activeCount(): number {
    return this.active.size;
  }

  /** Abandons every run without writing anything more, as a crash would. */
  stop(): void {
    this.stopped = true;
    for (const s of this.sleeping) {
      this.opts.timers.clearTimeout(s.handle);
      s.wake();
    }
    this.sleeping.clear();
  }

  private spawn(saga: SagaRecord, event?: string): void {
    const run = (async () => {
      try {
        if (event) {
          this.note(saga, event);
          await this.persist(saga);
        }
        await this.drive(saga);
      } catch (e) {
        if (!(e instanceof EngineStopped)) throw e;
      } finally {
        this.active.delete(saga.id);
      }
    })();
    this.active.set(saga.id, run);
    run.catch(() => {});
  }

  /** Runs the saga until it settles or, in choreography, until its next step belongs to another region. */
  private async drive(saga: SagaRecord): Promise<void> {
    const def = this.definition(saga.type);
    while (!isFinal(saga.status)) {
      if (saga.status === 'running') {
        const i = saga.steps.findIndex((s) => s.status !== 'done');
        if (i === -1) {
          saga.status = 'completed';
          this.note(saga, 'completed');
          await this.persist(saga);
          break;
        }
        const rec = saga.steps[i]!;
        if (rec.status === 'unknown') {
          if (!(await this.settle(saga, def.steps[i]!, rec))) return;
          continue;
        }
        if (!(await this.runAction(saga, def.steps[i]!, rec))) return;
      } else {
        // compensating: undo done steps (and unknown steps without settle) from the last to the first.
        let j = -1;
        for (let k = saga.steps.length - 1; k >= 0; k--) {
          const st = saga.steps[k]!.status;
          if (st === 'done' || st === 'compensating' || st === 'unknown') {
            j = k;
            break;
          }
        }
        if (j === -1) {
          saga.status = 'compensated';
          this.note(saga, 'compensated');
          await this.persist(saga);
          break;
        }
        const rec = saga.steps[j]!;
        const step = def.steps[j]!;
        if (rec.status === 'unknown' && step.settle) {
          if (!(await this.settle(saga, step, rec))) return;
          continue;
        }
        if (!(await this.runCompensation(saga, step, rec))) return;
      }
    }
    this.opts.onEvent?.({ type: 'settled', saga });
  }

  /** Returns false when the saga left this region's hands (handoff or stuck). */
  private async runAction(saga: SagaRecord, step: SagaStep, rec: StepRecord): Promise<boolean> {
    for (;;) {
      rec.attempts++;
      rec.status = 'running';
      rec.region = this.region;
      // Not persisted on its own: a crash before the outcome resumes by running the step again
      // with the same key, which is safe, and one replicated write less before a sync step keeps
      // the peers' acknowledgements for the step's own write from queueing behind it.
      this.note(saga, 'attempt', rec.name, rec.attempts);
      try {
        const result = await this.attempt(step.timeoutMs, () =>
          step.action(this.ctx(saga, rec, rec.attempts, '')),
        );
        rec.status = 'done';
        rec.result = result;
        delete rec.error;
        this.note(saga, 'done', rec.name, rec.attempts);
        await this.persist(saga);
        return true;
      } catch (e) {
        if (e instanceof EngineStopped) throw e;
        const handoff = this.handoffTarget(saga, e);
        if (handoff) {
          rec.status = 'pending';
          rec.attempts--;
          return this.handOff(saga, handoff, rec.name);
        }
        rec.error = describeError(e);
        if (isPermanent(e)) {
          rec.status = 'failed';
          saga.status = 'compensating';
          this.note(saga, 'failed', rec.name, rec.attempts, rec.error);
          await this.persist(saga);
          return true;
        }
        if (rec.attempts >= this.retry.maxAttempts) {
          rec.status = 'unknown';
          saga.status = step.settle ? 'running' : 'compensating';
          this.note(saga, 'outcome unknown', rec.name, rec.attempts, rec.error);
          await this.persist(saga);
          return true;
        }
        this.note(saga, 'retry', rec.name, rec.attempts, rec.error);
        await this.persist(saga);
        await this.sleep(retryDelayMs(this.retry, rec.attempts, this.opts.random));
      }
    }
  }

  /** Resolves an unknown outcome: the step is done after all, or fenced and failed. */
  private async settle(saga: SagaRecord, step: SagaStep, rec: StepRecord): Promise<boolean> {
    const settle = step.settle!;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = this.opts.bugs?.settleWithoutFence
          ? { applied: false as const }
          : await this.attempt(step.timeoutMs, () => settle(this.ctx(saga, rec, attempt, '')));
        if (r.applied) {
          rec.status = 'done';
          rec.result = r.result;
          if (saga.status === 'compensating') {
            // It took effect after all: compensate it like any done step.
            this.note(saga, 'settled: applied', rec.name, attempt);
          } else {
            saga.status = 'running';
            this.note(saga, 'settled: applied', rec.name, attempt);
          }
        } else {
          rec.status = 'failed';
          saga.status = 'compensating';
          this.note(saga, 'settled: fenced', rec.name, attempt);
        }
        await this.persist(saga);
        return true;
      } catch (e) {
        if (e instanceof EngineStopped) throw e;
        const handoff = this.handoffTarget(saga, e);
        if (handoff) return this.handOff(saga, handoff, rec.name);
        if (isPermanent(e) || attempt >= this.retry.maxCompensationAttempts) {
          return this.stuck(saga, rec, `settle failed: ${describeError(e)}`);
        }
        this.note(saga, 'settle retry', rec.name, attempt, describeError(e));
        await this.sleep(retryDelayMs(this.retry, attempt, this.opts.random));
      }
    }
  }

  private async runCompensation(saga: SagaRecord, step: SagaStep, rec: StepRecord): Promise<boolean> {
    if (!step.compensate) {
      rec.status = 'compensated';
      this.note(saga, 'nothing to compensate', rec.name);
      await this.persist(saga);
      return true;
    }
    const compensate = step.compensate;
    for (;;) {
      rec.compensationAttempts++;
      rec.status = 'compensating';
      rec.region = this.region;
      this.note(saga, 'compensation attempt', rec.name, rec.compensationAttempts);
      await this.persist(saga);
      try {
        await this.attempt(step.timeoutMs, () =>
          compensate(this.ctx(saga, rec, rec.compensationAttempts, ':compensate')),
        );
        rec.status = 'compensated';
        this.note(saga, 'compensated step', rec.name, rec.compensationAttempts);
        await this.persist(saga);
        return true;
      } catch (e) {
        if (e instanceof EngineStopped) throw e;
        const handoff = this.handoffTarget(saga, e);
        if (handoff) {
          rec.compensationAttempts--;
          return this.handOff(saga, handoff, rec.name);
        }
        rec.error = describeError(e);
        if (isPermanent(e) || rec.compensationAttempts >= this.retry.maxCompensationAttempts) {
          return this.stuck(saga, rec, `compensation failed: ${rec.error}`);
        }
        this.note(saga, 'compensation retry', rec.name, rec.compensationAttempts, rec.error);
        await this.persist(saga);
        await this.sleep(retryDelayMs(this.retry, rec.compensationAttempts, this.opts.random));
      }
    }
  }

  private async stuck(saga: SagaRecord, rec: StepRecord, error: string): Promise<boolean> {
    rec.error = error;
    saga.status = 'stuck';
    this.note(saga, 'stuck', rec.name, undefined, error);
    await this.persist(saga);
    this.opts.onEvent?.({ type: 'settled', saga });
    return false;
  }

  /** In choreography, a step refused with 421 names the region whose step it is. */
  private handoffTarget(saga: SagaRecord, e: unknown): RegionId | undefined {
    if (saga.mode !== 'choreography' || !isMeridianError(e) || e.code !== 'misdirected') return undefined;
    const to = e.details.replayRegion;
    return typeof to === 'string' && to !== this.region ? to : undefined;
  }

  private async handOff(saga: SagaRecord, to: RegionId, step: string): Promise<boolean> {
    saga.owner = to;
    this.note(saga, `handed to ${to}`, step);
    await this.persist(saga);
    return false;
  }

  private ctx(saga: SagaRecord, rec: StepRecord, attempt: number, suffix: string): StepContext {
    const results: Record<string, Json> = {};
    for (const s of saga.steps) if (s.status === 'done' && s.result !== undefined) results[s.name] = s.result;
    return {
      sagaId: saga.id,
      type: saga.type,
      mode: saga.mode,
      input: saga.input,
      step: rec.name,
      attempt,
      idempotencyKey: `${saga.id}:${rec.name}${suffix}`,
      results,
      region: this.region,
    };
  }

  /** One attempt bounded by the step timeout; a late answer of a timed-out attempt is ignored. */
  private attempt<T>(timeoutMs: number | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(new EngineStopped());
    const ms = timeoutMs ?? this.retry.stepTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const handle = this.opts.timers.setTimeout(() => reject(new StepTimeout(ms)), ms);
      fn().then(
        (v) => {
          this.opts.timers.clearTimeout(handle);
          if (this.stopped) reject(new EngineStopped());
          else resolve(v);
        },
        (e) => {
          this.opts.timers.clearTimeout(handle);
          reject(this.stopped ? new EngineStopped() : e);
        },
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.reject(new EngineStopped());
    return new Promise<void>((resolve, reject) => {
      const s = {
        handle: this.opts.timers.setTimeout(() => {
          this.sleeping.delete(s);
          resolve();
        }, ms) as TimerHandle,
        wake: () => reject(new EngineStopped()),
      };
      this.sleeping.add(s);
    });
  }

  private note(saga: SagaRecord, event: string, step?: string, attempt?: number, error?: string): void {
    const entry: HistoryEntry = { atMs: this.opts.clock.nowMs(), region: this.region, event };
    if (step !== undefined) entry.step = step;
    if (attempt !== undefined) entry.attempt = attempt;
    if (error !== undefined) entry.error = error;
    saga.history.push(entry);
    if (saga.history.length > MAX_HISTORY) saga.history.splice(1, saga.history.length - MAX_HISTORY);
    saga.updatedAtMs = entry.atMs;
    this.opts.onEvent?.({ type: 'transition', saga, entry });
  }

  private async persist(saga: SagaRecord): Promise<void> {
    if (this.stopped) throw new EngineStopped();
    const entry = sagaEntry(saga, this.defs.get(saga.type)?.collection);
    if (saga.status === 'completed' || saga.status === 'compensated') {
      entry.expiresAtMs = this.opts.clock.nowMs() + (this.opts.retentionMs ?? DEFAULT_SAGA_RETENTION_MS);
    }
    await this.opts.kv.writeKv([entry]);
    if (this.stopped) throw new EngineStopped();
  }
}

function sagaEntry(saga: SagaRecord, collection: string | undefined): KvEntry {
  const entry: KvEntry = { ns: SAGA_NS, key: saga.id, value: structuredClone(saga) as unknown as Json };
  if (collection !== undefined) entry.collection = collection;
  return entry;
}

export function asSaga(v: Json | undefined): SagaRecord | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  if (typeof v.id !== 'string' || typeof v.status !== 'string' || !Array.isArray(v.steps)) return undefined;
  return structuredClone(v) as unknown as SagaRecord;
}

/** The public view of a saga (GET /v1/sagas/{id}). */
export function sagaView(s: SagaRecord): Json {
  return {
    id: s.id,
    type: s.type,
    mode: s.mode,
    status: s.status,
    input: s.input,
    owner: s.owner,
    createdAtMs: s.createdAtMs,
    updatedAtMs: s.updatedAtMs,
    steps: s.steps as unknown as Json,
    history: s.history as unknown as Json,
  };
}
