/** Opens the configured storage backend (memory, SQLite or PostgreSQL) for one region. */
import { join } from 'node:path';
import { MemoryStore, type RegionStore } from '../core/store.js';
import type { MeridianConfig } from './config.js';
import { PostgresStore, regionSchema } from './postgres-store.js';
import { SqliteStore } from './sqlite-store.js';

/** Where a region's SQLite database lives: `<dir>/<region>.db`. */
export function sqlitePath(dir: string, region: string): string {
  return join(dir, `${region}.db`);
}

/**
 * Opens (creating if needed) the store of `region` as `cfg.store` describes: memory (nothing
 * survives the process), SQLite (`<dir>/<region>.db`) or PostgreSQL (schema `<schemaPrefix><region>`
 * with '-' as '_').
 * @example
 *   const store = await openStore(cfg, 'us-east-1');
 *   const state = await store.load();
 */
export async function openStore(cfg: Pick<MeridianConfig, 'store'>, region: string): Promise<RegionStore> {
  const s = cfg.store;
  switch (s.kind) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite':
      return SqliteStore.open({ path: sqlitePath(s.dir, region), synchronous: s.synchronous });
    case 'postgres':
      return PostgresStore.open({ url: s.url, schema: regionSchema(s.schemaPrefix, region) });
  }
}
