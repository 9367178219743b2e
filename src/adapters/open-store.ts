/** Opens the configured storage backend (memory, SQLite or PostgreSQL) for one region. */

import { MeridianError } from '../core/errors.js';
import { MemoryStore, type RegionStore } from '../core/store.js';
import type { MeridianConfig } from './config.js';

/**
 * Opens (creating if needed) the store of `region` as `cfg.store` describes.
 * @example
 *   const store = await openStore(cfg, 'us-east-1');
 *   const state = await store.load();
 */
export async function openStore(cfg: MeridianConfig, region: string): Promise<RegionStore> {
  const s = cfg.store;
  switch (s.kind) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite':
    case 'postgres':
      throw new MeridianError('internal', `store kind '${s.kind}' is not implemented yet (region ${region})`);
  }
}
