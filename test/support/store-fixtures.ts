/**
 * The stores the conformance suite runs against, each opened through `openStore` the way a region
 * node opens it, with a way to reopen the same data and to clean up afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { MeridianConfig } from '../../src/adapters/config.js';
import { openStore } from '../../src/adapters/open-store.js';
import { PostgresStore, regionSchema } from '../../src/adapters/postgres-store.js';
import type { RegionStore } from '../../src/core/store.js';
import { needService } from './services.js';

export const PG_URL = process.env.MERIDIAN_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface StoreFixture {
  name: 'memory' | 'sqlite' | 'postgres';
  /** Whether closing and reopening keeps the data. */
  durable: boolean;
  /** Whether failures inside the database (constraint violations) can be provoked. */
  sql: boolean;
  /** Skips the test when the backend is unavailable (laptop without PostgreSQL). */
  available(t: TestContext): Promise<boolean>;
  /** A fresh, empty store for `region`; reopening the same region of this fixture sees its data. */
  open(region?: string): Promise<RegionStore>;
  /** The `store` section of a config that opens this fixture's data (for child processes). */
  config(): Pick<MeridianConfig, 'store'>;
  /** Closes everything opened and removes the data. */
  cleanup(): Promise<void>;
}

export function memoryFixture(): StoreFixture {
  const opened: RegionStore[] = [];
  return {
    name: 'memory',
    durable: false,
    sql: false,
    available: async () => true,
    config: () => ({ store: { kind: 'memory' } }),
    open: async (region = 'us-east-1') => {
      const s = await openStore({ store: { kind: 'memory' } }, region);
      opened.push(s);
      return s;
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
    },
  };
}

export function sqliteFixture(): StoreFixture {
  let dir: string | undefined;
  const opened: RegionStore[] = [];
  return {
    name: 'sqlite',
    durable: true,
    sql: true,
    available: async () => true,
    config: () => {
      dir ??= mkdtempSync(join(tmpdir(), 'meridian-store-'));
      return { store: { kind: 'sqlite', dir, synchronous: 'normal' } };
    },
    open: async (region = 'us-east-1') => {
      dir ??= mkdtempSync(join(tmpdir(), 'meridian-store-'));
      const s = await openStore({ store: { kind: 'sqlite', dir, synchronous: 'normal' } }, region);
      opened.push(s);
      return s;
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Each fixture gets its own schema prefix, so parallel runs and helpers never share tables. */
export function postgresFixture(): StoreFixture {
  const prefix = `mtest_${process.pid}_${Math.random().toString(36).slice(2, 8)}_`;
  const opened: RegionStore[] = [];
  const regions = new Set<string>();
  return {
    name: 'postgres',
    durable: true,
    sql: true,
    available: (t) => needService(t, 'postgres'),
    config: () => {
      regions.add('us-east-1');
      return { store: { kind: 'postgres', url: PG_URL, schemaPrefix: prefix } };
    },
    open: async (region = 'us-east-1') => {
      regions.add(region);
      const s = await openStore({ store: { kind: 'postgres', url: PG_URL, schemaPrefix: prefix } }, region);
      opened.push(s);
      return s;
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
      for (const r of regions) await PostgresStore.dropSchema(PG_URL, regionSchema(prefix, r));
    },
  };
}

export const allFixtures = (): (() => StoreFixture)[] => [memoryFixture, sqliteFixture, postgresFixture];
