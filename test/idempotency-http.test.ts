import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Cluster, call, eventually, keyHomedIn, startCluster } from './support/cluster.js';

/** Idempotency-Key on real region nodes: every status code of the contract, and a replay in another region. */
describe('Idempotency-Key over HTTP', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'memory', mode: 'inprocess', node: { syncTimeoutMs: 800 } });
  });
  after(async () => {
    await c?.stop();
  });

  const us = () => c.url('us-east-1');

  it('replays the stored answer with Idempotent-Replayed: true (200)', async () => {
    const h = { 'idempotency-key': 'put-1' };
    const a = await call(us(), 'PUT', '/v1/settings/idem-a', { body: { x: 1 }, headers: h });
    assert.equal(a.status, 200);
    assert.equal(a.headers['idempotent-replayed'], undefined);
    const b = await call(us(), 'PUT', '/v1/settings/idem-a', { body: { x: 1 }, headers: h });
    assert.equal(b.status, 200);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.deepEqual(b.json, a.json);
    assert.ok(b.headers['meridian-version']);
  });

  it('applies a keyed increment once however often it is sent', async () => {
    const h = { 'idempotency-key': 'inc-1' };
    for (let i = 0; i < 3; i++) {
      const r = await call(us(), 'POST', '/v1/likes/idem-p/increment', { body: { by: 5 }, headers: h });
      assert.equal(r.status, 200);
      assert.deepEqual((r.json as { value: number }).value, 5);
    }
    const g = await call(us(), 'GET', '/v1/likes/idem-p');
    assert.equal((g.json as { value: number }).value, 5);
  });

  it('answers 422 when the key is reused for a different request', async () => {
    const h = { 'idempotency-key': 'put-2' };
    assert.equal(
      (await call(us(), 'PUT', '/v1/settings/idem-b', { body: { x: 1 }, headers: h })).status,
      200,
    );
    const r = await call(us(), 'PUT', '/v1/settings/idem-b', { body: { x: 2 }, headers: h });
    assert.equal(r.status, 422);
    assert.equal((r.json as { error: { code: string } }).error.code, 'idempotency_mismatch');
    const other = await call(us(), 'PUT', '/v1/settings/idem-c', { body: { x: 1 }, headers: h });
    assert.equal(other.status, 422, 'another path is another request');
    const g = await call(us(), 'GET', '/v1/settings/idem-b');
    assert.deepEqual((g.json as { value: unknown }).value, { x: 1 });
  });

  it('answers 400 for a key that is not 1 to 255 printable characters', async () => {
    for (const key of ['', 'k'.repeat(256)]) {
      const r = await call(us(), 'PUT', '/v1/settings/idem-d', {
        body: { x: 1 },
        headers: { 'idempotency-key': key },
      });
      assert.equal(r.status, 400, `key of ${key.length} characters`);
    }
    assert.equal((await call(us(), 'GET', '/v1/settings/idem-d')).status, 404, 'nothing was written');
  });

  it('answers 409 while the first request is in progress, then replays it', async () => {
    // A sync write waits for a peer's acknowledgement: with both peers down it is in progress until its timeout.
    await c.kill('eu-west-1');
    await c.kill('ap-northeast-1');
    try {
      const h = { 'idempotency-key': 'acct-1' };
      const put = () =>
        call(us(), 'PUT', `/v1/accounts/${keyHomedIn('accounts', 'us-east-1', 'idem-alice')}`, {
          body: { balance: 10 },
          headers: h,
        });
      const first = put();
      // Wait until the first holds the key, then repeat it.
      const second = await eventually('a 409 for the repeat', async () => {
        const r = await put();
        return r.status === 409 ? r : undefined;
      });
      assert.equal((second.json as { error: { code: string } }).error.code, 'idempotency_in_progress');
      const f = await first;
      assert.equal(f.status, 504, 'not confirmed in time: committed locally, outcome indefinite');
      // The write and its answer committed together, so the retry replays the answer, not a 504.
      const retry = await put();
      assert.equal(retry.status, 200);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
    } finally {
      await c.restart('eu-west-1');
      await c.restart('ap-northeast-1');
    }
  });

  it('replays in another region once the key has replicated there', async () => {
    const h = { 'idempotency-key': 'put-x-region' };
    const a = await call(us(), 'PUT', '/v1/settings/idem-e', { body: { y: 1 }, headers: h });
    assert.equal(a.status, 200);
    const token = a.headers['meridian-version']!;
    await eventually('eu-west-1 has the write', async () => {
      const r = await call(c.url('eu-west-1'), 'GET', '/v1/settings/idem-e', {
        headers: { 'meridian-min-version': token },
      });
      return r.status === 200;
    });
    const b = await call(c.url('eu-west-1'), 'PUT', '/v1/settings/idem-e', { body: { y: 1 }, headers: h });
    assert.equal(b.status, 200);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.deepEqual(b.json, a.json);
  });
});
