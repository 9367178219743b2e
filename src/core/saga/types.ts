/** The vocabulary of sagas: definitions (steps with actions and compensations) and persisted records. */
import type { Json, RegionId } from '../types.js';

export type SagaStatus = 'running' | 'completed' | 'compensating' | 'compensated' | 'stuck';
export const FINAL_STATUSES: readonly SagaStatus[] = ['completed', 'compensated', 'stuck'];

/**
 * pending: not started; running: an attempt may be in flight; done: took effect; failed: refused
 * with no effect; unknown: retries exhausted, outcome not known (settled before compensating);
 * compensated: its compensation took effect.
 */
export type StepStatus =
  | 'pending'
  | 'running'
  | 'done'
  | 'failed'
  | 'unknown'
  | 'compensating'
  | 'compensated';

/** orchestration: one coordinator runs every step; choreography: each region runs the steps that are its own, reacting to the replicated saga record. */
export type SagaMode = 'orchestration' | 'choreography';

export interface StepRecord {
  name: string;
  status: StepStatus;
  attempts: number;
  compensationAttempts: number;
  result?: Json;
  error?: string;
  /** The region that last ran it. */
  region?: RegionId;
}

export interface HistoryEntry {
  atMs: number;
  region: RegionId;
  event: string;
  step?: string;
  attempt?: number;
  error?: string;
}

export interface SagaRecord {
  id: string;
  type: string;
  mode: SagaMode;
  input: Json;
  status: SagaStatus;
  steps: StepRecord[];
  /** The region that runs it now: the coordinator, or in choreography the region whose turn it is. */
  owner: RegionId;
  createdAtMs: number;
  updatedAtMs: number;
  history: HistoryEntry[];
}

/** What a step's action or compensation is told. */
export interface StepContext {
  sagaId: string;
  type: string;
  mode: SagaMode;
  input: Json;
  step: string;
  attempt: number;
  /** Derived from the saga and the step, the same on every attempt and every coordinator. */
  idempotencyKey: string;
  /** Results of the steps done so far, by name. */
  results: Record<string, Json>;
  region: RegionId;
}

export type SettleResult = { applied: true; result: Json } | { applied: false };

export interface SagaStep {
  name: string;
  action(ctx: StepContext): Promise<Json>;
  /** Undoes a done step; must be idempotent (it is called with its own derived key). */
  compensate?(ctx: StepContext): Promise<unknown>;
  /**
   * Called when the action's outcome is unknown after its retries: makes sure it can no longer take
   * effect later (a fence on its key) and says whether it did. Without it, the step's compensation
   * runs, which must then be safe when the action never happened.
   */
  settle?(ctx: StepContext): Promise<SettleResult>;
  /** Per-attempt timeout (default: the engine's). */
  timeoutMs?: number;
}

export interface SagaDefinition {
  type: string;
  steps: SagaStep[];
  mode?: SagaMode;
  /**
   * The collection whose documents the saga moves (the transfer's accounts): its records and the
   * idempotency answers of its steps are that collection's data and share its residency.
   */
  collection?: string;
  /** Throws MeridianError('bad_request') for input the saga cannot run. */
  validate?(input: Json): void;
}

export function isFinal(status: SagaStatus): boolean {
  return FINAL_STATUSES.includes(status);
}
