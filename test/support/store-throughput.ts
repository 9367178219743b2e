/**
 * Store commit throughput by group-commit size, for SQLite (synchronous normal and full) and
 * PostgreSQL, next to a plain better-sqlite3 loop inserting the same rows in the same transactions.
 * Run: node --import tsx test/support/store-throughput.ts [writes=20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { PostgresStore } from '../../src/adapters/postgres-store.js';
import { SqliteStore } from '../../src/adapters/sqlite-store.js';
import type { Change } from '../../src/core/change.js';
import type { CommitBatch, RegionStore } from '../../src/core/store.js';
import { reachable } from './services.js';
import { PG_URL } from './store-fixtures.js';

const writes = Number(process.argv[2] ?? 20_000);
const dir = mkdtempSync(join(tmpdir(), 'meridian-tput-'));

function batchOf(start: number, n: number): CommitBatch {
  const changes: Change[] = [];
  const docs: CommitBatch['docs'] = [];
  for (let i = start; i < start + n; i++) {
    const hlc = `${(1_700_000_000_000 + i).toString(16).padStart(12, '0')}-000000`;
    const state = {
      t: 'reg' as const,
      value: { n: i, text: 'x'.repeat(64) },
      deleted: false,
      hlc,
      origin: 'us-east-1',
      prevHlc: hlc,
    };
    docs.push({ collection: 'settings', key: `k${i % 5000}`, state, version: { 'us-east-1': i + 1 } });
    changes.push({
      origin: 'us-east-1',
      seq: i + 1,
      hlc,
      payload: { kind: 'doc', collection: 'settings', key: `k${i % 5000}`, delta: state },
    });
  }
  // One upsert per key and batch, as RegionCore sends.
  const last = new Map(docs.map((d) => [d.key, d]));
  return { docs: [...last.values()], changes, kv: [], applied: { 'us-east-1': start + n } };
}

async function measure(store: RegionStore, batchSize: number): Promise<number> {
  const n = Math.min(writes, batchSize === 1 ? writes / 4 : writes);
  const t0 = performance.now();
  for (let i = 0; i < n; i += batchSize) await store.commit(batchOf(i, batchSize));
  return n / ((performance.now() - t0) / 1000);
}

/** The peer: the same rows with hand-written statements, no JSON of versions, no state row. */
function plainSqlite(batchSize: number): number {
  const db = new Database(join(dir, `plain-${batchSize}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(
    'CREATE TABLE docs (collection TEXT, key TEXT, state TEXT, PRIMARY KEY (collection, key)) WITHOUT ROWID',
  );
  db.exec('CREATE TABLE log (pos INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT, seq INTEGER, payload TEXT)');
  const put = db.prepare('INSERT OR REPLACE INTO docs VALUES (?, ?, ?)');
  const app = db.prepare('INSERT INTO log (origin, seq, payload) VALUES (?, ?, ?)');
  const tx = db.transaction((b: CommitBatch) => {
    for (const d of b.docs) put.run(d.collection, d.key, JSON.stringify(d.state));
    for (const c of b.changes) app.run(c.origin, c.seq, JSON.stringify(c.payload));
  });
  const n = Math.min(writes, batchSize === 1 ? writes / 4 : writes);
  const t0 = performance.now();
  for (let i = 0; i < n; i += batchSize) tx(batchOf(i, batchSize));
  const rate = n / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

const sizes = [1, 16, 256];
const rows: string[] = [];
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
for (const size of sizes) {
  console.log(`batch ${size}: plain sqlite, SqliteStore normal/full ...`);
  const plain = plainSqlite(size);
  const normal = SqliteStore.open({ path: join(dir, `n-${size}.db`), synchronous: 'normal' });
  const rn = await measure(normal, size);
  await normal.close();
  const full = SqliteStore.open({ path: join(dir, `f-${size}.db`), synchronous: 'full' });
  const rf = await measure(full, size);
  await full.close();
  let rp = Number.NaN;
  if (await reachable('127.0.0.1', 5432)) {
    console.log(`batch ${size}: PostgresStore ...`);
    const schema = `mtput_${process.pid}_${size}`;
    const pg = await PostgresStore.open({ url: PG_URL, schema });
    rp = await measure(pg, size);
    await pg.close();
    await PostgresStore.dropSchema(PG_URL, schema);
  }
  rows.push(
    `| ${size} | ${fmt(plain)} | ${fmt(rn)} (${(rn / plain).toFixed(2)}x) | ${fmt(rf)} | ${Number.isNaN(rp) ? 'n/a' : fmt(rp)} |`,
  );
}
console.log('\nwrites/s (one doc upsert + one log append per write; one transaction per batch)\n');
console.log(
  '| batch | plain better-sqlite3 | SqliteStore normal (ratio) | SqliteStore full | PostgresStore |',
);
console.log('| ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(r);
rmSync(dir, { recursive: true, force: true });
