/**
 * The extra route modules every region node registers, and the mutation hooks it runs. Features
 * that live beside the document API (sagas, idempotency keys) add themselves to these lists.
 */
import type { MutationHook, RegionRouteModule } from './context.js';
import { idempotencyHook, idempotencyModule } from './idempotency.js';
import { sagasModule } from './sagas.js';

export const defaultRouteModules: RegionRouteModule[] = [idempotencyModule, sagasModule];

export const defaultMutationHooks: MutationHook[] = [idempotencyHook];
