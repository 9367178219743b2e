/**
 * A region rebuilt from an empty disk (issue 10 row 12): its peers hold its changes up to some
 * sequence; it must recover them before issuing new sequence numbers, or the peers would take
 * its new writes for changes they already have and never apply them.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sqlitePath } from '../src/adapters/open-store.js';
import { decodeToken, encodeToken, mergeVersions, seqOf, type VersionVector } from '../src/core/version.js';
import { type Cluster, call, eventually, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

describe('a region restarted on a wiped disk (real processes, SQLite)', { timeout: 180_000 }, () => {
  let c: Cluster;
  before(async () => {
    // Reads below wait up to 20 s for a version; the node clamps a longer ask to its maxWaitMs.
    c = await startCluster({ store: 'sqlite', node: { maxWaitMs: 20_000 } });
  });
  after(async () => {
    await c?.stop();
  });

  it('recovers its own sequence from its peers, and its new writes reach them', async () => {
    let before: VersionVector = {};
    for (let i = 0; i < 40; i++) {
      const r = await call(c.url(US), 'PUT', `/v1/settings/old-${i}`, { body: i });
      assert.equal(r.status, 200, r.text);
      before = mergeVersions(before, decodeToken(r.headers['meridian-version']!));
    }
    const held = seqOf(before, US);
    assert.ok(held >= 40);
    for (const r of [EU, AP]) {
      const g = await call(c.url(r), 'GET', '/v1/settings/old-39', {
        headers: { 'meridian-min-version': encodeToken(before), 'meridian-max-wait-ms': '20000' },
      });
      assert.equal(g.status, 200, `${r}: ${g.text}`);
    }

    await c.kill(US, 'SIGKILL');
    const db = sqlitePath(join(c.dir, 'data'), US);
    for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
    await c.restart(US);

    // Writes may be refused (503) for the moment it takes to hear from its peers and catch up.
    const fresh = new Map<string, VersionVector>();
    for (let i = 0; i < 10; i++) {
      const key = `new-${i}`;
      const r = await eventually(
        `${key} accepted`,
        async () => {
          const w = await call(c.url(US), 'PUT', `/v1/settings/${key}`, { body: `v${i}` });
          if (w.status === 503) return false;
          return w;
        },
        20_000,
      );
      assert.equal(r.status, 200, r.text);
      const v = decodeToken(r.headers['meridian-version']!);
      assert.ok(
        seqOf(v, US) > held,
        `${key} took sequence ${seqOf(v, US)}, which the peers already hold (<= ${held})`,
      );
      fresh.set(key, v);
    }
    // Its old writes are back, recovered from the peers.
    assert.equal((await call(c.url(US), 'GET', '/v1/settings/old-0')).status, 200);
    // Both peers apply the new writes.
    for (const r of [EU, AP]) {
      for (const [key, v] of fresh) {
        const g = await call(c.url(r), 'GET', `/v1/settings/${key}`, {
          headers: { 'meridian-min-version': encodeToken(v), 'meridian-max-wait-ms': '20000' },
        });
        assert.equal(g.status, 200, `${r}/${key}: ${g.text}`);
        assert.equal((g.json as { value: unknown }).value, `v${key.slice(4)}`);
      }
    }
  });
});
