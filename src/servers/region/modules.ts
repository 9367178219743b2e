/**
 * The extra route modules every region node registers, and the mutation hooks it runs. Features
 * that live beside the document API (sagas, idempotency keys) add themselves to these lists.
 */
import type { MutationHook, RegionRouteModule } from './context.js';

export const defaultRouteModules: RegionRouteModule[] = [];

export const defaultMutationHooks: MutationHook[] = [];
