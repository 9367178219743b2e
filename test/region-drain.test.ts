/**
 * Draining (what SIGTERM does): /healthz turns 503 at once, new requests get 503, requests in
 * flight finish with their real answer, then the server closes. Also: `meridian region` exits 0 on
 * SIGTERM.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../src/adapters/config.js';
import { encodeToken } from '../src/core/version.js';
import { RegionNode } from '../src/servers/region/node.js';
import { call, eventually, startCluster } from './support/cluster.js';

const cfg = parseConfig({
  secrets: { clusterSecret: 'x'.repeat(32), adminToken: 'y'.repeat(32) },
  regions: [
    {
      id: 'us-east-1',
      lat: 38.9,
      lon: -77.4,
      node: { listen: { host: '127.0.0.1', port: 0 }, url: 'http://127.0.0.1:1' },
    },
  ],
  collections: [{ name: 'settings', policy: 'lww' }],
  store: { kind: 'memory' },
});

describe('draining', () => {
  it('answers 503 on /healthz and new requests, lets in-flight ones finish, then closes', async () => {
    const node = await RegionNode.start({ cfg, region: 'us-east-1', logLevel: 'silent' });
    const put = await call(node.url, 'PUT', '/v1/settings/a', { body: 1 });
    assert.equal(put.status, 200);
    // In flight: a read waiting 600 ms for a version that will not come.
    let waiting = false;
    const wait = node.core.waitForVersion.bind(node.core);
    node.core.waitForVersion = (want, maxWaitMs) => {
      waiting = true;
      return wait(want, maxWaitMs);
    };
    const inFlight = call(node.url, 'GET', '/v1/settings/a', {
      headers: { 'meridian-min-version': encodeToken({ 'us-east-1': 99 }), 'meridian-max-wait-ms': '600' },
    });
    await eventually('the read to be waiting', async () => waiting);
    const drained = node.drain({ graceMs: 300 });
    const h = await call(node.url, 'GET', '/healthz');
    assert.equal(h.status, 503);
    assert.deepEqual(h.json, { region: 'us-east-1', status: 'draining' });
    const w = await call(node.url, 'PUT', '/v1/settings/b', { body: 2 });
    assert.equal(w.status, 503);
    assert.equal((w.json as { error: { code: string } }).error.code, 'unavailable');
    const r = await inFlight;
    assert.equal(r.status, 503, 'the in-flight read got its own answer, not a reset');
    assert.equal((r.json as { error: { code: string } }).error.code, 'not_caught_up');
    await drained;
    await assert.rejects(call(node.url, 'GET', '/healthz'));
  });

  it('meridian region exits on SIGTERM', async () => {
    const c = await startCluster({ store: 'memory', regions: ['us-east-1'], logLevel: 'info' });
    try {
      await c.kill('us-east-1', 'SIGTERM');
      assert.equal(c.running('us-east-1'), false);
      assert.deepEqual(c.exitStatus('us-east-1'), { code: 0, signal: null });
      assert.match(c.output('us-east-1'), /"msg":"closed"/);
    } finally {
      await c.stop();
    }
  });
});
