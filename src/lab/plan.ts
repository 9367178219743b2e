/**
 * The lab's address plan (DESIGN.md): region k (1-based, in `--regions` order) has its node on
 * 127.0.k.1:7070 and its edge on 127.0.k.1:8080; the dashboard and lab API listen on 127.0.0.1:8080,
 * GeoDNS on 127.0.0.1:5353. The WAN emulator's proxy for the directed link k -> j listens on
 * 127.0.k.1:(7100 + j), so every route a region uses to leave it sits on the region's own address.
 */
import { loadRegionTable, type RegionTableEntry } from '../adapters/region-table.js';

export const DEFAULT_REGIONS = ['us-east-1', 'eu-west-1', 'ap-northeast-1'] as const;
export const LAB_HOST = '127.0.0.1';
export const LAB_PORT = 8080;
export const NODE_PORT = 7070;
export const EDGE_PORT = 8080;
export const DNS_PORT = 5353;
export const WAN_PORT_BASE = 7100;
export const MIN_REGIONS = 2;
export const MAX_REGIONS = 10;

export interface LabRegion extends RegionTableEntry {
  /** 1-based position in `--regions`. */
  index: number;
  host: string;
  nodeUrl: string;
  edgeUrl: string;
}

/** A directed WAN link: traffic that leaves `from` for `to`'s node crosses it. */
export interface LabLink {
  from: string;
  to: string;
  listenHost: string;
  listenPort: number;
  targetHost: string;
  targetPort: number;
  oneWayMs: number;
}

export interface LabPlan {
  regions: LabRegion[];
  links: LabLink[];
  labUrl: string;
  dns: { host: string; port: number; zone: string; name: string };
}

/** Parses `--regions a,b,c`, checking each against the region table and the 2..10 bound. */
export function parseRegionList(arg: string | undefined): string[] {
  const ids = (arg ?? DEFAULT_REGIONS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const table = loadRegionTable();
  const known = table.regions.map((r) => r.id);
  for (const id of ids) {
    if (!known.includes(id))
      throw new Error(`--regions: unknown region '${id}'; choose from ${known.join(', ')}`);
  }
  if (new Set(ids).size !== ids.length) throw new Error('--regions: a region is listed twice');
  if (ids.length < MIN_REGIONS || ids.length > MAX_REGIONS) {
    throw new Error(`--regions: give ${MIN_REGIONS} to ${MAX_REGIONS} regions, got ${ids.length}`);
  }
  return ids;
}

/**
 * The whole address plan for a list of region ids.
 * @example labPlan(['us-east-1', 'eu-west-1']).regions[1].edgeUrl // 'http://127.0.2.1:8080'
 */
export function labPlan(ids: readonly string[]): LabPlan {
  const table = loadRegionTable();
  const regions: LabRegion[] = ids.map((id, i) => {
    const host = `127.0.${i + 1}.1`;
    return {
      ...table.get(id),
      index: i + 1,
      host,
      nodeUrl: `http://${host}:${NODE_PORT}`,
      edgeUrl: `http://${host}:${EDGE_PORT}`,
    };
  });
  const links: LabLink[] = [];
  for (const a of regions) {
    for (const b of regions) {
      if (a.id === b.id) continue;
      links.push({
        from: a.id,
        to: b.id,
        listenHost: a.host,
        listenPort: WAN_PORT_BASE + b.index,
        targetHost: b.host,
        targetPort: NODE_PORT,
        oneWayMs: table.oneWayMs(a.id, b.id),
      });
    }
  }
  return {
    regions,
    links,
    labUrl: `http://${LAB_HOST}:${LAB_PORT}`,
    dns: { host: LAB_HOST, port: DNS_PORT, zone: 'meridian.test', name: 'app.meridian.test' },
  };
}

/** The URL region `from` uses to reach `to`'s node: its WAN proxy. */
export function routeUrl(plan: LabPlan, from: string, to: string): string {
  const l = plan.links.find((x) => x.from === from && x.to === to);
  if (!l) throw new Error(`no WAN link ${from} -> ${to}`);
  return `http://${l.listenHost}:${l.listenPort}`;
}

/** EU regions of the lab: where `eu-profiles` may live. */
export function euRegions(plan: LabPlan): string[] {
  return plan.regions.filter((r) => r.id.startsWith('eu-')).map((r) => r.id);
}
