/**
 * Crash safety with real processes (SQLite): kill -9 a region node under write load, restart it,
 * and check that every write it acknowledged is still there, that it catches up with what its
 * peers took meanwhile, and that its acknowledged writes reach the peers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeToken, encodeToken, mergeVersions, type VersionVector } from '../src/core/version.js';
import { type Cluster, call, eventually, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

describe('kill -9 under write load (SQLite)', { timeout: 180_000 }, () => {
  let c: Cluster;
  before(async () => {
    // Reads below wait up to 20 s for a version; the node clamps a longer ask to its maxWaitMs.
    c = await startCluster({ store: 'sqlite', node: { maxWaitMs: 20_000 } });
  });
  after(async () => {
    await c?.stop();
  });

  it('loses no acknowledged write and catches up from its peers after restart', async () => {
    const acked = new Map<string, number>();
    let ackedIncrements = 0;
    let attemptedIncrements = 0;
    let usVersion: VersionVector = {};
    let stop = false;
    let failures = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        try {
          if (i % 4 === 3) {
            attemptedIncrements++;
            const r = await call(c.url(US), 'POST', '/v1/likes/crash/increment', { body: { by: 1 } });
            if (r.status === 200) ackedIncrements++;
          } else {
            const r = await call(c.url(US), 'PUT', `/v1/settings/${key}`, { body: { w, i } });
            if (r.status === 200) {
              acked.set(key, i);
              usVersion = mergeVersions(usVersion, decodeToken(r.headers['meridian-version']!));
            }
          }
        } catch {
          failures++; // connection refused or reset: not acknowledged
          if (stop) return;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await eventually('300 acknowledged writes', async () => acked.size >= 300, 60_000);
    await c.kill(US, 'SIGKILL');
    const ackedAtKill = acked.size;
    // Let the writers hit the dead node for a moment, then stop them.
    await eventually('writers to notice the crash', async () => failures > 0, 10_000);
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.size >= ackedAtKill);

    // While us-east-1 is down, its peers take writes it must catch up on.
    let peerVersion: VersionVector = {};
    for (let i = 0; i < 20; i++) {
      const r = await call(c.url(i % 2 ? EU : AP), 'PUT', `/v1/settings/while-down-${i}`, { body: i });
      assert.equal(r.status, 200);
      peerVersion = mergeVersions(peerVersion, decodeToken(r.headers['meridian-version']!));
    }

    await c.restart(US);
    // Every acknowledged write survived the crash, with its value.
    for (const [key, i] of acked) {
      const r = await call(c.url(US), 'GET', `/v1/settings/${key}`);
      assert.equal(r.status, 200, `acknowledged ${key} lost: ${r.text}`);
      assert.equal((r.json as { value: { i: number } }).value.i, i);
    }
    const counter = await call(c.url(US), 'GET', '/v1/likes/crash');
    const n = (counter.json as { value: number }).value;
    assert.ok(
      n >= ackedIncrements && n <= attemptedIncrements,
      `counter ${n} in [${ackedIncrements}, ${attemptedIncrements}]`,
    );

    // It catches up with what the peers took while it was down ...
    const caughtUp = await call(c.url(US), 'GET', '/v1/settings/while-down-19', {
      headers: { 'meridian-min-version': encodeToken(peerVersion), 'meridian-max-wait-ms': '20000' },
    });
    assert.equal(caughtUp.status, 200, caughtUp.text);
    for (let i = 0; i < 20; i++) {
      assert.equal((await call(c.url(US), 'GET', `/v1/settings/while-down-${i}`)).status, 200);
    }
    // ... and its acknowledged writes reach them.
    for (const r of [EU, AP]) {
      const last = [...acked.keys()].at(-1)!;
      const g = await call(c.url(r), 'GET', `/v1/settings/${last}`, {
        headers: { 'meridian-min-version': encodeToken(usVersion), 'meridian-max-wait-ms': '20000' },
      });
      assert.equal(g.status, 200, `${r}: ${g.text}`);
    }
    const sample = [...acked.keys()].filter((_, i) => i % 17 === 0);
    for (const key of sample) {
      for (const r of [EU, AP])
        assert.equal((await call(c.url(r), 'GET', `/v1/settings/${key}`)).status, 200);
    }
  });
});
