/** What every part of a region node's HTTP shell shares: the core, config, metrics, logs and hooks. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { MeridianConfig } from '../../adapters/config.js';
import type { Logger } from '../../adapters/logger.js';
import type { RegionMetrics } from '../../adapters/metrics.js';
import type { DocView, RegionCore, WriteOptions } from '../../core/region.js';
import type { ReplicationDriver } from '../../core/replication/driver.js';
import type { PeerFeed } from '../../core/replication/feed.js';
import type { RegionId } from '../../core/types.js';
import type { VersionVector } from '../../core/version.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Merged version tokens the client sent (Meridian-Version, Meridian-Min-Version). */
    sentVersion: VersionVector | undefined;
    /** Meridian-Min-Version: what a read must wait for. */
    minVersion: VersionVector | undefined;
  }
}

export interface RegionNodeContext {
  readonly region: RegionId;
  readonly cfg: MeridianConfig;
  readonly core: RegionCore;
  readonly metrics: RegionMetrics;
  readonly log: Logger;
  isDraining(): boolean;
  /** Outbound replication streams being served, closed first when draining. */
  readonly feeds: Set<PeerFeed>;
  /** Serves peers' streams and acknowledgements (the routes in internal.ts are its HTTP side). */
  readonly replication: ReplicationDriver;
  readonly mutationHooks: readonly MutationHook[];
}

export type MutationKind = 'put' | 'delete' | 'increment' | 'add' | 'remove';

/** One document mutation, validated, ready to run through the core. */
export interface MutationOp {
  kind: MutationKind;
  collection: string;
  key: string;
  /** The parsed request body (already schema-checked for increment/add/remove). */
  body: unknown;
  /** Performs the write; `options.kv` commits replicated metadata in the same transaction. */
  apply(options: WriteOptions): Promise<DocView>;
}

/** What a mutation answers; hooks may replace it (e.g. a replayed idempotent answer). */
export interface MutationAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

export interface MutationContext {
  request: FastifyRequest;
  reply: FastifyReply;
  op: MutationOp;
  node: RegionNodeContext;
}

/**
 * Wraps every document mutation, outermost first (Idempotency-Key handling plugs in here).
 * Call `next(options)` to run the write, or return an answer without calling it.
 */
export type MutationHook = (
  ctx: MutationContext,
  next: (options?: WriteOptions) => Promise<MutationAnswer>,
) => Promise<MutationAnswer>;

/** Extra routes registered on the node's app (sagas, admin...), in list order. */
export interface RegionRouteModule {
  name: string;
  register(app: FastifyInstance, node: RegionNodeContext): Promise<void> | void;
}
