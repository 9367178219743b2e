/**
 * Batch isolation with real region nodes (issue 10 row 3): writes that cannot be stored, sent
 * together with good ones so that they share group commits, fail alone; every good write is
 * answered 200, stored and replicated, and replication goes on afterwards.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { MeridianError } from '../src/core/errors.js';
import type { Json } from '../src/core/types.js';
import { decodeToken, encodeToken, mergeVersions, seqOf, type VersionVector } from '../src/core/version.js';
import { type Cluster, call, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

const NEW_COLLECTION = { name: 'rollout', policy: 'lww', replication: { mode: 'async' } };

/** An array nested `depth` deep, built without recursion. */
function nested(depth: number): Json {
  let v: Json = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** Reads `key` at each peer once it has applied `version`; every one must hold `value`. */
async function assertReplicated(
  c: Cluster,
  version: VersionVector,
  keys: Map<string, unknown>,
): Promise<void> {
  for (const r of [EU, AP]) {
    // One read that waits for the whole version, then plain reads.
    const first = [...keys.keys()][0]!;
    const w = await call(c.url(r), 'GET', `/v1/settings/${first}`, {
      headers: { 'meridian-min-version': encodeToken(version), 'meridian-max-wait-ms': '20000' },
    });
    assert.equal(w.status, 200, `${r} did not apply ${encodeToken(version)}: ${w.text}`);
    for (const [key, value] of keys) {
      const g = await call(c.url(r), 'GET', `/v1/settings/${key}`);
      assert.equal(g.status, 200, `${r}/${key}: ${g.text}`);
      assert.deepEqual((g.json as { value: unknown }).value, value);
    }
  }
}

describe('one bad write never fails its batch (real processes)', { timeout: 180_000 }, () => {
  let c: Cluster;
  before(async () => {
    // Reads below wait up to 20 s for a version; the node clamps a longer ask to its maxWaitMs.
    c = await startCluster({ store: 'sqlite', node: { maxWaitMs: 20_000 } });
  });
  after(async () => {
    await c?.stop();
  });

  it('5 bodies nested 10,000 deep among 95 good writes, repeated: every good one is 200, stored and replicated', async () => {
    const good = new Map<string, unknown>();
    let version: VersionVector = {};
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          i % 20 === 7
            ? call(c.url(US), 'PUT', `/v1/settings/deep-${round}-${i}`, {
                raw: deep,
                headers: { 'content-type': 'application/json' },
              }).then((r) => ({ bad: true, i, r }))
            : call(c.url(US), 'PUT', `/v1/settings/ok-${round}-${i}`, { body: { round, i } }).then((r) => ({
                bad: false,
                i,
                r,
              })),
        ),
      );
      for (const { bad, i, r } of results) {
        if (bad) {
          assert.ok(
            r.status >= 400 && r.status < 500,
            `deep-${round}-${i}: ${r.status} ${r.text.slice(0, 200)}`,
          );
          const e = (r.json as { error?: { code?: unknown; message?: unknown } }).error;
          assert.ok(typeof e?.code === 'string' && typeof e.message === 'string', r.text.slice(0, 200));
        } else {
          assert.equal(r.status, 200, `ok-${round}-${i}: ${r.text.slice(0, 200)}`);
          good.set(`ok-${round}-${i}`, { round, i });
          version = mergeVersions(version, decodeToken(r.headers['meridian-version']!));
        }
      }
    }
    assert.equal(good.size, 285);
    for (let round = 0; round < 3; round++) {
      assert.equal((await call(c.url(US), 'GET', `/v1/settings/deep-${round}-7`)).status, 404);
    }
    await assertReplicated(c, version, good);
    // Replication keeps flowing afterwards.
    const later = await call(c.url(US), 'PUT', '/v1/settings/later', { body: 'still flowing' });
    assert.equal(later.status, 200);
    await assertReplicated(
      c,
      decodeToken(later.headers['meridian-version']!),
      new Map([['later', 'still flowing']]),
    );
  });
});

describe('a change a peer cannot apply is quarantined while the stream goes on (real processes)', {
  timeout: 180_000,
}, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'sqlite', node: { maxWaitMs: 20_000 } });
  });
  after(async () => {
    await c?.stop();
  });

  it('us-east-1 restarted with a collection its peers do not have: they quarantine its changes and apply the rest', async () => {
    // us-east-1 alone runs newer config with one more collection (a rollout in progress).
    await c.kill(US, 'SIGTERM');
    const raw = JSON.parse(readFileSync(c.configPath, 'utf8')) as { collections: unknown[] };
    writeFileSync(
      c.configPath,
      JSON.stringify({ ...raw, collections: [...raw.collections, NEW_COLLECTION] }),
    );
    await c.restart(US);
    writeFileSync(c.configPath, JSON.stringify(raw));

    const before = await call(c.url(US), 'PUT', '/v1/settings/before', { body: 1 });
    assert.equal(before.status, 200, before.text);
    const odd = await call(c.url(US), 'PUT', '/v1/rollout/k', { body: { only: 'us' } });
    assert.equal(odd.status, 200, odd.text);
    const afterIt = await call(c.url(US), 'PUT', '/v1/settings/after', { body: 2 });
    assert.equal(afterIt.status, 200, afterIt.text);
    const version = mergeVersions(
      decodeToken(before.headers['meridian-version']!),
      decodeToken(afterIt.headers['meridian-version']!),
    );
    await assertReplicated(
      c,
      version,
      new Map<string, unknown>([
        ['before', 1],
        ['after', 2],
      ]),
    );
    const seq = seqOf(decodeToken(odd.headers['meridian-version']!), US);
    for (const r of [EU, AP]) {
      const metrics = (await call(c.url(r), 'GET', '/metrics')).text;
      assert.match(metrics, /meridian_replication_quarantined_total\{[^}]*origin="us-east-1"[^}]*\} 1/);
      const status = (
        await call(c.url(r), 'GET', '/internal/v1/status', {
          headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}` },
        })
      ).json as {
        quarantine: {
          total: number;
          recent: { origin: string; seq: number; collection: string; reason: string }[];
        };
      };
      assert.equal(status.quarantine.total, 1);
      assert.deepEqual(
        status.quarantine.recent.map((q) => [q.origin, q.seq, q.collection]),
        [[US, seq, 'rollout']],
      );
      assert.match(status.quarantine.recent[0]!.reason, /unknown collection 'rollout'/);
      const logged = c
        .output(r)
        .split('\n')
        .find((l) => l.includes('replication change quarantined'));
      assert.ok(logged, `${r} logs the quarantine at warn`);
      assert.match(logged, /"origin":"us-east-1"/);
      assert.match(logged, /"key":"k"/);
    }
  });
});

describe('the core refuses what the HTTP layer let through, alone (real nodes in one process)', {
  timeout: 120_000,
}, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'sqlite', mode: 'inprocess', node: { maxWaitMs: 20_000 } });
  });
  after(async () => {
    await c?.stop();
  });

  it('values too deep for the store, written straight to the core among HTTP writes, fail alone', async () => {
    const core = c.node(US)!.core;
    const good = new Map<string, unknown>();
    let version: VersionVector = {};
    const bad: Promise<unknown>[] = [];
    const http: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 20 === 7) bad.push(core.put('settings', `core-deep-${i}`, nested(10_000)));
      else {
        http.push(
          call(c.url(US), 'PUT', `/v1/settings/http-${i}`, { body: { i } }).then((r) => {
            assert.equal(r.status, 200, `http-${i}: ${r.text.slice(0, 200)}`);
            good.set(`http-${i}`, { i });
            version = mergeVersions(version, decodeToken(r.headers['meridian-version']!));
          }),
        );
        // Some good writes straight to the core too, so that bad and good share batches for certain.
        if (i % 10 === 3) {
          http.push(
            core.put('settings', `core-${i}`, { i }).then((v) => {
              good.set(`core-${i}`, { i });
              version = mergeVersions(version, v.version);
            }),
          );
        }
      }
    }
    const refused = await Promise.allSettled(bad);
    await Promise.all(http);
    for (const r of refused) {
      assert.equal(r.status, 'rejected');
      if (r.status === 'rejected') assert.equal((r.reason as MeridianError).code, 'too_deep');
    }
    assert.equal(good.size, 95 + 10);
    await assertReplicated(c, version, good);
    const status = await call(c.url(US), 'GET', '/v1/settings/core-deep-7');
    assert.equal(status.status, 404);
  });
});
