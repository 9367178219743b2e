/** The PostgreSQL region store: one schema per region, every batch in one atomic statement over a `pg` pool. */
import pg from 'pg';
import type { Change } from '../core/change.js';
import { MeridianError } from '../core/errors.js';
import type { CommitBatch, DocRecord, KvRecord, RegionStore, Snapshot, StoredState } from '../core/store.js';
import type { VersionVector } from '../core/version.js';
import { type DocRow, type KvRow, type LogRow, type StateRow, toChange, toDoc, toKv } from './store-rows.js';

export interface PostgresStoreOptions {
  /** A libpq-style URL, e.g. postgres://postgres@127.0.0.1:5432/postgres. */
  url: string;
  /** The schema that holds this region's tables; created if missing. */
  schema: string;
  /** Pool size (default 4: commits are serial per region, reads are short). */
  maxConnections?: number;
}

/** The schema of `region` under `prefix`: `meridian_` + `eu-west-1` -> `meridian_eu_west_1`. */
export function regionSchema(prefix: string, region: string): string {
  return `${prefix}${region.replaceAll('-', '_')}`;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// JSON is kept as TEXT (not jsonb): it round-trips exactly (key order, strings with \u0000) and the
// store never queries inside it.
const ddl = (s: string): string => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.docs (
  collection TEXT NOT NULL,
  key TEXT NOT NULL,
  state TEXT NOT NULL,
  version TEXT NOT NULL,
  PRIMARY KEY (collection, key)
);
CREATE TABLE IF NOT EXISTS ${s}.log (
  pos BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  origin TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hlc TEXT NOT NULL,
  payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_origin_seq ON ${s}.log (origin, seq);
CREATE TABLE IF NOT EXISTS ${s}.kv (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  hlc TEXT NOT NULL,
  expires_at_ms BIGINT,
  PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS kv_expiry ON ${s}.kv (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
ALTER TABLE ${s}.kv ADD COLUMN IF NOT EXISTS collection TEXT;
CREATE TABLE IF NOT EXISTS ${s}.state (
  id INT PRIMARY KEY CHECK (id = 1),
  applied TEXT NOT NULL,
  truncated TEXT NOT NULL,
  max_hlc TEXT
);
INSERT INTO ${s}.state (id, applied, truncated, max_hlc) VALUES (1, '{}', '{}', NULL)
  ON CONFLICT (id) DO NOTHING;
`;

/** Keeps the last record per id, so one multi-row upsert never touches a row twice. */
function lastById<T>(items: readonly T[], id: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const t of items) {
    const k = id(t);
    m.delete(k);
    m.set(k, t);
  }
  return [...m.values()];
}

/**
 * A region's tables in its own PostgreSQL schema. A commit is a single statement whatever the
 * batch size: multi-row upserts through `unnest` of arrays, chained as data-modifying CTEs.
 * @example
 *   const store = await PostgresStore.open({ url: 'postgres://postgres@127.0.0.1/postgres', schema: 'meridian_us_east_1' });
 */
export class PostgresStore implements RegionStore {
  private readonly s: string;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.s = pg.escapeIdentifier(schema);
  }

  /** Connects and creates the schema and tables if missing. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    if (!SCHEMA_NAME.test(options.schema)) {
      throw new MeridianError(
        'bad_request',
        `invalid PostgreSQL schema name '${options.schema}': use lowercase letters, digits and '_'`,
      );
    }
    const pool = new pg.Pool({ connectionString: options.url, max: options.maxConnections ?? 4 });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, options.schema);
    try {
      await store.tx(async (c) => {
        // Serialises concurrent first opens: CREATE ... IF NOT EXISTS is not race-free.
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [options.schema]);
        await c.query(ddl(store.s));
      });
    } catch (e) {
      await pool.end();
      throw e;
    }
    return store;
  }

  /** Drops a region's schema and everything in it (tests and `meridian` resets). */
  static async dropSchema(url: string, schema: string): Promise<void> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
    } finally {
      await c.end();
    }
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query(begin);
      const out = await fn(c);
      await c.query('COMMIT');
      c.release();
      return out;
    } catch (e) {
      // A client whose ROLLBACK fails is broken: destroy it instead of returning it to the pool.
      await c.query('ROLLBACK').then(
        () => c.release(),
        (err: Error) => c.release(err),
      );
      throw e;
    }
  }

  async load(): Promise<StoredState> {
    const { rows } = await this.pool.query<StateRow>(
      `SELECT applied, truncated, max_hlc FROM ${this.s}.state WHERE id = 1`,
    );
    const st = rows[0]!;
    return {
      applied: JSON.parse(st.applied) as VersionVector,
      truncated: JSON.parse(st.truncated) as VersionVector,
      maxHlc: st.max_hlc ?? undefined,
    };
  }

  async getDoc(collection: string, key: string): Promise<DocRecord | undefined> {
    const { rows } = await this.pool.query<DocRow>(
      `SELECT collection, key, state, version FROM ${this.s}.docs WHERE collection = $1 AND key = $2`,
      [collection, key],
    );
    return rows[0] && toDoc(rows[0]);
  }

  async commit(batch: CommitBatch): Promise<void> {
    // Encoded before the query: a value that cannot be encoded fails the commit without a round trip.
    const docs = lastById(batch.docs, (d) => `${d.collection}\u0000${d.key}`);
    const docCols = [
      docs.map((d) => d.collection),
      docs.map((d) => d.key),
      docs.map((d) => JSON.stringify(d.state)),
      docs.map((d) => JSON.stringify(d.version)),
    ];
    const changes = batch.changes;
    const logCols = [
      changes.map((c) => c.origin),
      changes.map((c) => c.seq),
      changes.map((c) => c.hlc),
      changes.map((c) => JSON.stringify(c.payload)),
    ];
    const kv = lastById(batch.kv, (r) => `${r.ns}\u0000${r.key}`);
    const kvCols = [
      kv.map((r) => r.ns),
      kv.map((r) => r.key),
      kv.map((r) => JSON.stringify(r.value)),
      kv.map((r) => r.hlc),
      kv.map((r) => r.expiresAtMs ?? null),
      kv.map((r) => r.collection ?? null),
    ];
    let maxHlc: string | null = null;
    for (const c of changes) if (maxHlc === null || c.hlc > maxHlc) maxHlc = c.hlc;
    const applied = JSON.stringify(batch.applied);

    // One statement, so one round trip: a statement is atomic on its own, and data-modifying CTEs
    // all run or none does. The identity positions follow the batch order (ORDER BY i).
    await this.pool.query(
      `WITH d AS (
         INSERT INTO ${this.s}.docs (collection, key, state, version)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (collection, key) DO UPDATE SET state = excluded.state, version = excluded.version
       ), l AS (
         INSERT INTO ${this.s}.log (origin, seq, hlc, payload)
         SELECT o, s, h, p FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[])
           WITH ORDINALITY AS u(o, s, h, p, i) ORDER BY i
       ), k AS (
         INSERT INTO ${this.s}.kv (ns, key, value, hlc, expires_at_ms, collection)
         SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[])
         ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, hlc = excluded.hlc,
           expires_at_ms = excluded.expires_at_ms, collection = excluded.collection
       )
       UPDATE ${this.s}.state SET applied = $15,
         max_hlc = CASE WHEN max_hlc IS NULL OR $16::text > max_hlc COLLATE "C" THEN $16::text ELSE max_hlc END
       WHERE id = 1`,
      [...docCols, ...logCols, ...kvCols, applied, maxHlc],
    );
  }

  async readLog(have: VersionVector, limit: number): Promise<Change[]> {
    if (limit <= 0) return [];
    const origins = Object.keys(have);
    // Every origin in the log (skip-scan over the index), each read from its cursor through the
    // index, merged by position: cost follows what the peer lacks, not the log's length.
    const { rows } = await this.pool.query<LogRow>(
      `WITH RECURSIVE o(origin) AS (
         SELECT min(origin) FROM ${this.s}.log
         UNION ALL
         SELECT (SELECT min(origin) FROM ${this.s}.log WHERE origin > o.origin) FROM o WHERE o.origin IS NOT NULL
       ), h AS (
         SELECT o.origin, COALESCE(hv.seq, 0) AS have
         FROM o LEFT JOIN unnest($1::text[], $2::bigint[]) AS hv(origin, seq) ON hv.origin = o.origin
         WHERE o.origin IS NOT NULL
       )
       SELECT l.origin, l.seq, l.hlc, l.payload
       FROM h CROSS JOIN LATERAL (
         SELECT pos, origin, seq, hlc, payload FROM ${this.s}.log
         WHERE origin = h.origin AND seq > h.have ORDER BY seq, pos LIMIT $3
       ) l
       ORDER BY l.pos LIMIT $3`,
      [origins, origins.map((o) => have[o]), limit],
    );
    return rows.map(toChange);
  }

  async truncateLog(upTo: VersionVector): Promise<void> {
    const origins = Object.keys(upTo);
    await this.tx(async (c) => {
      const { rows } = await c.query<StateRow>(
        `SELECT truncated FROM ${this.s}.state WHERE id = 1 FOR UPDATE`,
      );
      const truncated = JSON.parse(rows[0]!.truncated) as Record<string, number>;
      await c.query(
        `DELETE FROM ${this.s}.log l USING unnest($1::text[], $2::bigint[]) AS u(origin, seq)
         WHERE l.origin = u.origin AND l.seq <= u.seq`,
        [origins, origins.map((o) => upTo[o])],
      );
      for (const o of origins) truncated[o] = Math.max(truncated[o] ?? 0, upTo[o] ?? 0);
      await c.query(`UPDATE ${this.s}.state SET truncated = $1 WHERE id = 1`, [JSON.stringify(truncated)]);
    });
  }

  async snapshot(): Promise<Snapshot> {
    // One REPEATABLE READ transaction: the documents, kv and version all come from one instant.
    return this.tx(async (c) => {
      const docs = await c.query<DocRow>(`SELECT collection, key, state, version FROM ${this.s}.docs`);
      const kv = await c.query<KvRow>(
        `SELECT ns, key, value, hlc, expires_at_ms, collection FROM ${this.s}.kv`,
      );
      const st = await c.query<StateRow>(`SELECT applied FROM ${this.s}.state WHERE id = 1`);
      return {
        docs: docs.rows.map(toDoc),
        kv: kv.rows.map(toKv),
        applied: JSON.parse(st.rows[0]!.applied) as VersionVector,
      };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async getKv(ns: string, key: string): Promise<KvRecord | undefined> {
    const { rows } = await this.pool.query<KvRow>(
      `SELECT ns, key, value, hlc, expires_at_ms, collection FROM ${this.s}.kv WHERE ns = $1 AND key = $2`,
      [ns, key],
    );
    return rows[0] && toKv(rows[0]);
  }

  async listKv(ns: string): Promise<KvRecord[]> {
    // COLLATE "C": byte order, the same order the other stores give (not the database's locale).
    const { rows } = await this.pool.query<KvRow>(
      `SELECT ns, key, value, hlc, expires_at_ms, collection FROM ${this.s}.kv WHERE ns = $1 ORDER BY key COLLATE "C"`,
      [ns],
    );
    return rows.map(toKv);
  }

  async purgeKv(nowMs: number): Promise<number> {
    const res = await this.pool.query(
      `DELETE FROM ${this.s}.kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1`,
      [nowMs],
    );
    return res.rowCount ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
