/**
 * The region table: AWS regions with coordinates and measured round-trip times
 * (data/aws-regions.json, imported as a module: core data, read by no I/O of the core's own). The
 * simulator places its regions and sets its network delays from it; the lab emulates its WAN
 * from it.
 */
import table from '../../data/aws-regions.json' with { type: 'json' };
import type { RegionInfo } from './types.js';

export interface RegionTableEntry extends RegionInfo {
  name: string;
}

export interface RegionTable {
  regions: RegionTableEntry[];
  /** Measured round-trip time from `a` to `b` in milliseconds (0 for a region to itself). */
  rttMs(a: string, b: string): number;
  /** One-way delay used for emulation and simulation: RTT / 2. */
  oneWayMs(a: string, b: string): number;
  get(id: string): RegionTableEntry;
}

let cached: RegionTable | undefined;

/**
 * The table, built once from the data.
 *
 * @example
 * const t = loadRegionTable();
 * t.oneWayMs('us-east-1', 'eu-west-1'); // 40.275
 */
export function loadRegionTable(): RegionTable {
  if (cached) return cached;
  const raw = table as {
    regions: RegionTableEntry[];
    rttMs: Record<string, Record<string, number>>;
  };
  const byId = new Map(raw.regions.map((r) => [r.id, r]));
  const rttMs = (a: string, b: string): number => {
    if (a === b) return 0;
    const v = raw.rttMs[a]?.[b] ?? raw.rttMs[b]?.[a];
    if (v === undefined) throw new Error(`no RTT between ${a} and ${b} in the region table`);
    return v;
  };
  cached = {
    regions: raw.regions,
    rttMs,
    oneWayMs: (a, b) => rttMs(a, b) / 2,
    get: (id) => {
      const r = byId.get(id);
      if (!r) throw new Error(`unknown region '${id}'; known: ${raw.regions.map((x) => x.id).join(', ')}`);
      return r;
    },
  };
  return cached;
}
