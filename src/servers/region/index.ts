/** The region node: the HTTP shell around the region core (DESIGN.md, HTTP contract). */
export { buildRegionApp, type RegionAppOptions } from './app.js';
export type {
  MutationAnswer,
  MutationContext,
  MutationHook,
  MutationKind,
  MutationOp,
  RegionNodeContext,
  RegionRouteModule,
} from './context.js';
export { H as MeridianHeaders } from './headers.js';
export { defaultMutationHooks, defaultRouteModules } from './modules.js';
export { runMutation } from './mutation.js';
export { RegionNode, type RegionNodeOptions } from './node.js';
