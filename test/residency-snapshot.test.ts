/**
 * Residency covers everything a region stores about a resident collection, not only its documents:
 * a write to `eu-profiles` (resident in eu-west-1) with an Idempotency-Key stores the answer, body
 * included, beside the document. A non-resident region rebuilt from an empty disk gets a snapshot;
 * afterwards no table and no byte of its SQLite files (database and WAL) may hold the resident key,
 * value or idempotency key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { decodeToken } from '../src/core/version.js';
import { type Cluster, call, eventually, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';

describe('residency: a non-resident region rebuilt from a snapshot holds nothing resident', {
  timeout: 180_000,
}, () => {
  let c: Cluster;
  const tag = randomBytes(6).toString('hex');
  const markers = {
    key: `resident-key-${tag}`,
    value: `resident-value-${tag}`,
    idempotencyKey: `resident-idem-${tag}`,
  };
  const status = async (r: string) =>
    (
      await call(c.url(r), 'GET', '/internal/v1/status', {
        headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}` },
      })
    ).json as { truncated: Record<string, number>; stats: { version: Record<string, number> } };

  before(async () => {
    c = await startCluster({
      store: 'sqlite',
      replication: { logKeep: 0, logMaxRetain: 20, compactIntervalMs: 100 },
    });
  });
  after(async () => {
    await c?.stop();
  });

  it('withholds resident documents, change-log entries and idempotency answers', async () => {
    let euSeq = 0;
    for (let i = 0; i < 4; i++) {
      const r = await call(c.url(EU), 'PUT', `/v1/eu-profiles/${markers.key}-${i}`, {
        body: { name: `${markers.value}-${i}` },
        headers: { 'idempotency-key': `${markers.idempotencyKey}-${i}` },
      });
      assert.equal(r.status, 200, r.text);
      euSeq = decodeToken(r.headers['meridian-version']!)[EU]!;
    }
    // Something non-resident from the same origin, which the rebuilt region must receive.
    const open = await call(c.url(EU), 'PUT', `/v1/settings/open-${tag}`, {
      body: 'everywhere',
      headers: { 'idempotency-key': `open-${tag}` },
    });
    assert.equal(open.status, 200, open.text);
    euSeq = decodeToken(open.headers['meridian-version']!)[EU]!;
    // Every peer acknowledged, so eu-west-1 cuts its log: a region starting from nothing gets a snapshot.
    await eventually(
      'eu-west-1 to truncate its log',
      async () => ((await status(EU)).truncated[EU] ?? 0) >= euSeq,
    );

    await c.kill(US);
    const dataDir = join(c.dir, 'data');
    for (const f of readdirSync(dataDir)) if (f.startsWith(`${US}.`)) rmSync(join(dataDir, f));
    await c.restart(US);
    const g = await call(c.url(US), 'GET', `/v1/settings/open-${tag}`, {
      headers: { 'meridian-min-version': open.headers['meridian-version']!, 'meridian-max-wait-ms': '20000' },
    });
    assert.equal(g.status, 200, g.text);
    const m = (await call(c.url(US), 'GET', '/metrics')).text;
    assert.match(m, /meridian_snapshots_applied_total\{[^}]*from="eu-west-1"[^}]*\} [1-9]/);
    // The non-resident idempotency answer did arrive: only resident data is withheld.
    const replay = await call(c.url(US), 'PUT', `/v1/settings/open-${tag}`, {
      body: 'everywhere',
      headers: { 'idempotency-key': `open-${tag}` },
    });
    assert.equal(replay.headers['idempotent-replayed'], 'true');

    await c.kill(US);
    const files = readdirSync(dataDir).filter((f) => f.startsWith(`${US}.`));
    assert.ok(files.includes(`${US}.db`), `the SQLite files of ${US}: ${files.join(', ')}`);
    // Every byte on disk, before SQLite touches the files again (the WAL included).
    for (const f of files) {
      const bytes = readFileSync(join(dataDir, f));
      for (const [what, s] of Object.entries(markers)) {
        assert.equal(bytes.includes(Buffer.from(s)), false, `${f} holds the resident ${what}`);
      }
    }
    // Every row of every table, read from a copy (opening the original would checkpoint its WAL).
    const copy = mkdtempSync(join(tmpdir(), 'meridian-residency-'));
    try {
      for (const f of files) copyFileSync(join(dataDir, f), join(copy, f));
      const db = new Database(join(copy, `${US}.db`), { readonly: true, fileMustExist: true });
      try {
        const tables = db
          .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
          .all()
          .map((t) => t.name);
        assert.ok(tables.includes('kv') && tables.includes('docs') && tables.includes('log'));
        let rows = 0;
        for (const t of tables) {
          for (const row of db.prepare(`SELECT * FROM "${t.replaceAll('"', '""')}"`).all()) {
            rows++;
            const text = JSON.stringify(row);
            for (const [what, s] of Object.entries(markers)) {
              assert.equal(
                text.includes(s),
                false,
                `table ${t} holds the resident ${what}: ${text.slice(0, 300)}`,
              );
            }
          }
        }
        assert.ok(rows > 0, 'the rebuilt region holds the non-resident data');
        const kv = db.prepare<[], { key: string }>("SELECT key FROM kv WHERE ns = 'idem'").all();
        assert.deepEqual(
          kv.map((r) => r.key),
          [`open-${tag}`],
        );
      } finally {
        db.close();
      }
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
    assert.ok(existsSync(join(dataDir, `${US}.db`)));
  });
});
