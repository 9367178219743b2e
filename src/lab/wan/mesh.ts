/** Builds the full mesh of WAN links between regions from the region table (one-way = RTT / 2). */
import { loadRegionTable, type RegionTable } from '../../adapters/region-table.js';
import type { WanEmulator } from './emulator.js';
import type { HostPort } from './link.js';

export interface MeshOptions {
  /** Each region and where its node listens. */
  regions: { id: string; target: HostPort }[];
  /** Default: the project's region table (data/aws-regions.json). */
  table?: Pick<RegionTable, 'oneWayMs'>;
  /** Where the proxy for `from` -> `to` listens (default 127.0.0.1, any free port). */
  listen?: (from: string, to: string) => Partial<HostPort>;
  /** Multiplies every table delay (1 = real; tests use less to run faster). */
  scale?: number;
  jitterMs?: number;
  lossRate?: number;
}

/** from -> to -> the address `from` uses to reach `to`'s node through the emulator. */
export type Mesh = Record<string, Record<string, HostPort>>;

/**
 * Adds one link per ordered pair of regions, with the table's one-way delay in each direction.
 * @example
 *   const mesh = await buildMesh(wan, { regions: [{ id: 'us-east-1', target: { host: '127.0.1.1', port: 7070 } }, ...] });
 *   const routes = meshRoutes(mesh); // routes['us-east-1']['eu-west-1'] === 'http://127.0.0.1:40123'
 */
export async function buildMesh(wan: WanEmulator, o: MeshOptions): Promise<Mesh> {
  const table = o.table ?? loadRegionTable();
  const scale = o.scale ?? 1;
  for (const a of o.regions) {
    for (const b of o.regions) {
      if (a.id !== b.id) {
        wan.setPath(a.id, b.id, {
          delayMs: table.oneWayMs(a.id, b.id) * scale,
          jitterMs: o.jitterMs ?? 0,
          lossRate: o.lossRate ?? 0,
        });
      }
    }
  }
  const mesh: Mesh = {};
  for (const a of o.regions) {
    mesh[a.id] = {};
    for (const b of o.regions) {
      if (a.id === b.id) continue;
      mesh[a.id]![b.id] = await wan.addLink({
        from: a.id,
        to: b.id,
        target: b.target,
        listen: o.listen?.(a.id, b.id),
        jitterMs: o.jitterMs,
        lossRate: o.lossRate,
      });
    }
  }
  return mesh;
}

/** The mesh as the config's `regions[].routes` maps: from -> to -> http URL. */
export function meshRoutes(mesh: Mesh): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [from, tos] of Object.entries(mesh)) {
    out[from] = {};
    for (const [to, a] of Object.entries(tos)) out[from]![to] = `http://${a.host}:${a.port}`;
  }
  return out;
}
