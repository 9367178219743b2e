/** The edge router: reverse proxy, routing policies, health checks, replay and read-your-writes. */
export { type Edge, type EdgeEvent, type EdgeOptions, type EdgeStatus, startEdge } from './server.js';
export { DEFAULT_UPSTREAM, type UpstreamOptions } from './upstreams.js';
