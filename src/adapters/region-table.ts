/** The region table: AWS regions with coordinates and measured round-trip times (data/aws-regions.json). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RegionInfo } from '../core/types.js';

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

/** The project root: the nearest folder above this module with a package.json (works from src/ and dist/). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the project root (no package.json above this module)');
    dir = up;
  }
  return dir;
}

let cached: RegionTable | undefined;

export function loadRegionTable(): RegionTable {
  if (cached) return cached;
  const raw = JSON.parse(readFileSync(join(projectRoot(), 'data', 'aws-regions.json'), 'utf8')) as {
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
