/** The WAN emulator's public surface. */
export {
  type AddLinkOptions,
  type CutMode,
  type PathSettings,
  WanEmulator,
  type WanOptions,
} from './emulator.js';
export type { HostPort, LinkState, LinkStats } from './link.js';
export { buildMesh, type Mesh, type MeshOptions, meshRoutes } from './mesh.js';
export type { PathConditions } from './pipe.js';
