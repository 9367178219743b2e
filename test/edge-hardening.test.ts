/**
 * The edge against real region nodes when clients ask for what cannot be had (issue 10 row 6): a
 * read that asks the region to wait long for a version nobody has is answered by the region when
 * its wait ends, never timed out by the edge and never counted against the region's health;
 * other traffic keeps flowing; an ask beyond the edge's longest wait is refused before it leaves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeToken } from '../src/core/version.js';
import { buildMesh, meshRoutes, WanEmulator } from '../src/lab/wan/index.js';
import type { Edge } from '../src/servers/edge/index.js';
import { edgeOver, recordEvents, viaEdge } from './edge-support.js';
import { type Cluster, startCluster } from './support/cluster.js';

/** Probes that never come again after the first round: only live traffic could eject a region. */
const NO_PROBES = { intervalMs: 3_600_000, timeoutMs: 2000, fall: 3, rise: 2 };

describe('edge: client-caused waits never eject a region', () => {
  let cluster: Cluster;
  const edges: Edge[] = [];
  const wan = new WanEmulator({ handshake: false });

  before(async () => {
    // Region-to-region traffic goes through the WAN emulator, so a region can be cut off from its
    // peers while the edge still reaches every node directly.
    cluster = await startCluster({
      store: 'memory',
      configure: async (raw, { addresses }) => {
        const mesh = await buildMesh(wan, {
          regions: Object.entries(addresses).map(([id, target]) => ({ id, target })),
          scale: 0,
        });
        const routes = meshRoutes(mesh);
        for (const r of raw.regions) r.routes = routes[r.id] ?? {};
      },
    });
  });

  after(async () => {
    for (const e of edges) await e.close();
    await cluster?.stop();
    await wan.close();
  });

  it('a read asking to wait longer than the edge budget for a version its region cannot get is answered, and no region is ejected', async () => {
    // The edge's own budget for an answer head is 500 ms; the client asks the region to wait 1.5 s.
    const edge = await edgeOver(
      cluster.cfg,
      { policy: 'failover', priority: ['eu-west-1', 'us-east-1', 'ap-northeast-1'], health: NO_PROBES },
      { upstream: { headersTimeoutMs: 500 }, routes: {} },
    );
    edges.push(edge);
    const rec = recordEvents(edge);
    await viaEdge(edge, 'PUT', '/v1/settings/row6', { body: { v: 1 } });
    // us-east-1 is cut off from its peers; a write there makes a version no other region can reach.
    wan.isolate('us-east-1');
    try {
      const w = await fetch(`${cluster.url('us-east-1')}/v1/settings/row6-us`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"v":2}',
      });
      assert.equal(w.status, 200, await w.text());
      const unreachable = w.headers.get('meridian-version');
      assert.ok(unreachable);
      const waits = Array.from({ length: 4 }, () =>
        viaEdge(edge, 'GET', '/v1/settings/row6-us', {
          headers: { 'meridian-min-version': unreachable, 'meridian-max-wait-ms': '1500' },
        }),
      );
      // Other requests keep flowing meanwhile, to the same region.
      for (let i = 0; i < 5; i++) {
        const r = await viaEdge(edge, 'GET', '/v1/settings/row6');
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.route?.region, 'eu-west-1');
      }
      for (const r of await Promise.all(waits)) {
        // eu-west-1 waited the 1.5 s asked and named us-east-1, where the replay found the version.
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.deepEqual(r.route, { policy: 'failover', region: 'us-east-1', reason: 'replay' });
      }
      const errors = rec.events.filter((e) => e.kind === 'outcome' && e.outcome.kind === 'error');
      assert.deepEqual(errors, [], 'the edge gave up on no request');
      assert.deepEqual(
        rec.events.filter((e) => e.kind === 'transition'),
        [],
        'no health transition',
      );
      assert.ok(edge.status().regions.every((s) => s.status === 'up'));
      const after = await viaEdge(edge, 'GET', '/v1/settings/row6');
      assert.equal(after.route?.region, 'eu-west-1');
    } finally {
      wan.healAll('us-east-1');
    }
  });

  it('a region answering 503 not_caught_up for a version nobody issued is not counted as failing', async () => {
    const edge = await edgeOver(
      cluster.cfg,
      { policy: 'failover', priority: ['eu-west-1', 'us-east-1', 'ap-northeast-1'], health: NO_PROBES },
      { routes: {} },
    );
    edges.push(edge);
    // A change of eu-west-1 it never issued: every region waits the 300 ms asked, then says so.
    const never = encodeToken({ 'eu-west-1': 1_000_000 });
    const r = await viaEdge(edge, 'GET', '/v1/settings/row6', {
      headers: { 'meridian-min-version': never, 'meridian-max-wait-ms': '300' },
    });
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.equal((r.json as { error: { code: string } }).error.code, 'not_caught_up');
    for (const s of edge.status().regions) {
      assert.equal(s.errors, 0, `${s.region} was charged with the client's unreachable version`);
      assert.equal(s.status, 'up');
    }
  });

  it('refuses a wait ask beyond the edge longest wait, or malformed, with 400 before sending it', async () => {
    const edge = await edgeOver(cluster.cfg, { maxWaitMs: 2000, health: NO_PROBES });
    edges.push(edge);
    const rec = recordEvents(edge);
    for (const ask of ['2001', '60000', '-1', '1e3', 'soon']) {
      const r = await viaEdge(edge, 'GET', '/v1/settings/row6', { headers: { 'meridian-max-wait-ms': ask } });
      assert.equal(r.status, 400, `${ask}: ${JSON.stringify(r.json)}`);
      assert.equal((r.json as { error: { code: string } }).error.code, 'bad_request');
    }
    assert.equal(rec.dispatches().length, 0, 'nothing was sent to a region');
    const ok = await viaEdge(edge, 'GET', '/v1/settings/row6', {
      headers: { 'meridian-max-wait-ms': '2000' },
    });
    assert.notEqual(ok.status, 400);
  });
});
