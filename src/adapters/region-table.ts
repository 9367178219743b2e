/**
 * The project root on disk, and the region table for the layers that took it from here (it is
 * core data now: src/core/regions.ts).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export { loadRegionTable, type RegionTable, type RegionTableEntry } from '../core/regions.js';

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
