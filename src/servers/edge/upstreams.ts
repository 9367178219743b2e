/**
 * Keep-alive connection pools to every region node: an H1Pool (raw sockets, h1pool.ts) per region
 * for traffic and a small undici Pool per region for probes (so a probe never queues behind busy
 * traffic and its RTT measures the network, not the pool; probes are off the hot path).
 */
import { Pool } from 'undici';
import { type MeridianConfig, nodeUrlFrom } from '../../adapters/config.js';
import { DEFAULT_HEALTH } from '../../core/health.js';
import type { RegionId } from '../../core/types.js';
import { H1Pool } from './h1pool.js';

export interface UpstreamOptions {
  /** Most connections the edge keeps open to one region. */
  connections: number;
  /** Idle keep-alive sockets are closed after this long. */
  keepAliveTimeoutMs: number;
  /** A request with no answer headers after this long is a failure (and may be retried). */
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export const DEFAULT_UPSTREAM: UpstreamOptions = {
  connections: 256,
  keepAliveTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
};

/** How long an idle probe connection is kept (below the region node's 65 s keep-alive). */
const PROBE_KEEPALIVE_MS = 60_000;

export interface Upstream {
  region: RegionId;
  url: string;
  pool: H1Pool;
  probe: Pool;
}

/** Pools for every region, reached as the edge's region reaches them (through the WAN emulator in the lab). */
export function openUpstreams(
  cfg: MeridianConfig,
  edgeRegion: RegionId,
  options: Partial<UpstreamOptions> = {},
): Map<RegionId, Upstream> {
  const o = { ...DEFAULT_UPSTREAM, ...options } satisfies UpstreamOptions;
  // Enough probe connections for the probes that overlap while a region does not answer: a probe
  // past its deadline keeps listening for a late answer up to the RTO ceiling (core/health.ts),
  // and one queued behind it would time out in the queue, not on the path. They stay open for a
  // minute idle (the node keeps them 65 s): a new one costs a TCP handshake, one more round trip,
  // which prober.ts allows for when no idle connection is left.
  const h = cfg.edge.health;
  const probeConnections =
    Math.ceil(Math.max(h.timeoutMs, h.maxTimeoutMs ?? DEFAULT_HEALTH.maxTimeoutMs) / h.intervalMs) + 1;
  const out = new Map<RegionId, Upstream>();
  for (const r of cfg.regions) {
    const url = new URL(nodeUrlFrom(cfg, edgeRegion, r.id)).origin;
    out.set(r.id, {
      region: r.id,
      url,
      pool: new H1Pool(url, o),
      probe: new Pool(url, {
        connections: probeConnections,
        pipelining: 1,
        keepAliveTimeout: PROBE_KEEPALIVE_MS,
      }),
    });
  }
  return out;
}

export async function closeUpstreams(upstreams: Map<RegionId, Upstream>): Promise<void> {
  await Promise.all([...upstreams.values()].flatMap((u) => [u.pool.destroy(), u.probe.destroy()]));
}
