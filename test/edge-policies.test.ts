/**
 * The edge against three real region nodes (one process each): every routing policy, GeoIP,
 * replay of 421 to a pinned key's home, sticky reads after a write, read-your-writes through the
 * version cookie across a partition, and the edge's own status, metrics and health answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeGeoIp } from '../src/adapters/geoip.js';
import { buildMesh, meshRoutes, WanEmulator } from '../src/lab/wan/index.js';
import type { Edge } from '../src/servers/edge/index.js';
import { CookieJar, edgeOver, recordEvents, viaEdge } from './edge-support.js';
import {
  type Cluster,
  call,
  eventually,
  type HostPort,
  keyHomedIn,
  startCluster,
} from './support/cluster.js';

const PARIS = '48.85,2.35';
const TOKYO = '35.68,139.69';
const VIRGINIA = '38.9,-77.4';
// Probes often enough for quick tests, with a timeout generous enough for a busy CI machine.
const FAST_HEALTH = { intervalMs: 200, timeoutMs: 1000, fall: 3, rise: 2 };

describe('edge over real region nodes', () => {
  let cluster: Cluster;
  let addresses: Record<string, HostPort>;
  const wan = new WanEmulator({ handshake: false });
  const edges: Edge[] = [];
  const track = (e: Edge): Edge => {
    edges.push(e);
    return e;
  };

  before(async () => {
    cluster = await startCluster({
      store: 'memory',
      node: { maxWaitMs: 300 },
      // Region-to-region traffic crosses the WAN emulator (with no delay) so a test can partition it.
      configure: async (raw, info) => {
        addresses = info.addresses;
        const mesh = await buildMesh(wan, {
          regions: Object.entries(info.addresses).map(([id, target]) => ({ id, target })),
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

  it('geo: sends each client to the nearest region, by header or by GeoIP', async () => {
    const edge = track(await edgeOver(cluster.cfg, { policy: 'geo', health: FAST_HEALTH }));
    for (const [where, region] of [
      [PARIS, 'eu-west-1'],
      [TOKYO, 'ap-northeast-1'],
      [VIRGINIA, 'us-east-1'],
    ] as const) {
      const r = await viaEdge(edge, 'PUT', '/v1/settings/geo', {
        body: { at: where },
        headers: { 'meridian-client-location': where },
      });
      const why = JSON.stringify({ status: r.status, body: r.json, edge: edge.status().regions });
      assert.equal(r.status, 200, why);
      assert.deepEqual(r.route, { policy: 'geo', region, reason: 'nearest' }, why);
      assert.equal(r.headers['meridian-region'], region, 'the node that answered is the one routed to');
      assert.equal(r.headers['meridian-edge'], 'us-east-1');
    }
    // No header: the client's IP through GeoIP (an override puts loopback in Tokyo).
    const geoIp = makeGeoIp([{ cidr: '127.0.0.0/8', lat: 35.68, lon: 139.69 }], undefined, {});
    const byIp = track(await edgeOver(cluster.cfg, { policy: 'geo', health: FAST_HEALTH }, { geoIp }));
    const r = await viaEdge(byIp, 'GET', '/v1/settings/geo');
    assert.equal(r.route?.region, 'ap-northeast-1');
    assert.equal(r.route?.reason, 'nearest');
  });

  it("latency: picks the lowest smoothed RTT of the edge's own probes", async () => {
    // The edge reaches each region through its own WAN links: eu-west-1 is the closest.
    const oneWayMs: Record<string, number> = { 'us-east-1': 60, 'eu-west-1': 2, 'ap-northeast-1': 30 };
    const routes: Record<string, string> = {};
    for (const [id, delayMs] of Object.entries(oneWayMs)) {
      const via = await wan.addLink({ from: 'edge-latency', to: id, target: addresses[id]!, delayMs });
      routes[id] = `http://${via.host}:${via.port}`;
    }
    const edge = track(await edgeOver(cluster.cfg, { policy: 'latency', health: FAST_HEALTH }, { routes }));
    // The first probes also pay for connection setup; the smoothed RTTs settle into the links' order.
    await eventually(
      'smoothed RTTs in the order of the links',
      async () => {
        const srtt = Object.fromEntries(edge.status().regions.map((x) => [x.region, x.srttMs ?? Infinity]));
        return srtt['eu-west-1']! < srtt['ap-northeast-1']! && srtt['ap-northeast-1']! < srtt['us-east-1']!;
      },
      10_000,
    );
    const r = await viaEdge(edge, 'GET', '/v1/settings/geo');
    assert.equal(r.status, 200);
    assert.deepEqual(r.route, { policy: 'latency', region: 'eu-west-1', reason: 'lowest-latency' });
  });

  it('weighted: shares requests by weight', async () => {
    let i = 0;
    const n = 40;
    const random = { next: () => (i++ % n) / n };
    const edge = track(
      await edgeOver(
        cluster.cfg,
        { policy: 'weighted', weights: { 'us-east-1': 3, 'eu-west-1': 1 }, health: FAST_HEALTH },
        { random },
      ),
    );
    const served: Record<string, number> = {};
    for (let k = 0; k < n; k++) {
      const r = await viaEdge(edge, 'GET', '/v1/settings/geo');
      assert.equal(r.status, 200);
      assert.equal(r.route?.reason, 'weighted');
      const region = r.headers['meridian-region'] as string;
      served[region] = (served[region] ?? 0) + 1;
    }
    assert.deepEqual(served, { 'us-east-1': 30, 'eu-west-1': 10 });
  });

  it('failover: the first region of the priority list takes the traffic', async () => {
    const edge = track(
      await edgeOver(cluster.cfg, {
        policy: 'failover',
        priority: ['ap-northeast-1', 'eu-west-1'],
        health: FAST_HEALTH,
      }),
    );
    const r = await viaEdge(edge, 'GET', '/v1/settings/geo');
    assert.deepEqual(r.route, { policy: 'failover', region: 'ap-northeast-1', reason: 'priority' });
    assert.equal(r.headers['meridian-region'], 'ap-northeast-1');
  });

  it('replays a 421 to the home of a pinned key, then keeps the writer reading there', async () => {
    const edge = track(await edgeOver(cluster.cfg, { policy: 'geo', health: FAST_HEALTH }));
    const seen = recordEvents(edge);
    const jar = new CookieJar();
    // A Paris client creates a profile whose home (by the rule) is Tokyo: eu-west-1 answers 421,
    // the edge replays.
    const alice = keyHomedIn('profiles', 'ap-northeast-1', 'alice');
    const w = await viaEdge(edge, 'PUT', `/v1/profiles/${alice}`, {
      body: { name: 'Alice' },
      headers: { 'meridian-client-location': PARIS },
      jar,
    });
    assert.equal(w.status, 200, JSON.stringify(w.json));
    assert.deepEqual(w.route, { policy: 'geo', region: 'ap-northeast-1', reason: 'replay' });
    assert.deepEqual(
      seen.dispatches().map((e) => e.kind === 'dispatch' && [e.region, e.reason]),
      [
        ['eu-west-1', 'nearest'],
        ['ap-northeast-1', 'replay'],
      ],
    );
    // The 421 also counts as a redirect, not a failure: eu-west-1 stays up.
    assert.equal(edge.table.isUp('eu-west-1'), true);

    // Sticky: for the next stickyMs the client's reads go to the region of its write.
    const r = await viaEdge(edge, 'GET', `/v1/profiles/${alice}`, {
      headers: { 'meridian-client-location': PARIS },
      jar,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.route, { policy: 'geo', region: 'ap-northeast-1', reason: 'sticky' });
    assert.deepEqual((r.json as { value: unknown }).value, { name: 'Alice' });
    // A client without the cookie is routed by policy.
    const other = await viaEdge(edge, 'GET', '/v1/settings/geo', {
      headers: { 'meridian-client-location': PARIS },
    });
    assert.equal(other.route?.reason, 'nearest');
  });

  it('sticky reads end after stickyMs', async () => {
    const edge = track(await edgeOver(cluster.cfg, { policy: 'geo', stickyMs: 400, health: FAST_HEALTH }));
    const jar = new CookieJar();
    const w = await viaEdge(edge, 'PUT', '/v1/settings/sticky', {
      body: 1,
      headers: { 'meridian-client-location': TOKYO },
      jar,
    });
    assert.equal(w.route?.region, 'ap-northeast-1');
    const first = await viaEdge(edge, 'GET', '/v1/settings/sticky', {
      headers: { 'meridian-client-location': PARIS },
      jar,
    });
    assert.equal(first.route?.reason, 'sticky');
    await eventually(
      'the sticky window to close',
      async () => {
        const r = await viaEdge(edge, 'GET', '/v1/settings/sticky', {
          headers: { 'meridian-client-location': PARIS },
          jar,
        });
        return r.route?.reason === 'nearest' && r.route.region === 'eu-west-1';
      },
      3000,
    );
  });

  it('read-your-writes through the version cookie, even when the read lands on a lagging region', async () => {
    // stickyMs 0: only the version cookie carries the guarantee.
    // Direct routes: the edge itself must not be cut off by the partition below.
    const edge = track(
      await edgeOver(cluster.cfg, { policy: 'geo', stickyMs: 0, health: FAST_HEALTH }, { routes: {} }),
    );
    const jar = new CookieJar();
    // eu-west-1 is cut off from both peers (changes may reach it through either).
    wan.split('ap-northeast-1', 'eu-west-1');
    wan.split('us-east-1', 'eu-west-1');
    try {
      const w = await viaEdge(edge, 'PUT', '/v1/settings/ryw', {
        body: { v: 'fresh' },
        headers: { 'meridian-client-location': TOKYO },
        jar,
      });
      assert.equal(w.status, 200);
      assert.equal(w.route?.region, 'ap-northeast-1');
      assert.ok(jar.cookies.get('meridian_version'), 'the write set the version cookie');

      // Without the cookie, eu-west-1 (cut off from Tokyo) answers from its stale copy.
      const stale = await viaEdge(edge, 'GET', '/v1/settings/ryw', {
        headers: { 'meridian-client-location': PARIS },
      });
      assert.equal(stale.status, 404);
      assert.equal(stale.route?.region, 'eu-west-1');

      // With it, eu-west-1 is asked for the write's version, cannot reach it, names Tokyo, and the
      // edge replays there: the client reads its write.
      const r = await viaEdge(edge, 'GET', '/v1/settings/ryw', {
        headers: { 'meridian-client-location': PARIS },
        jar,
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual((r.json as { value: unknown }).value, { v: 'fresh' });
      assert.deepEqual(r.route, { policy: 'geo', region: 'ap-northeast-1', reason: 'replay' });
    } finally {
      for (const peer of ['ap-northeast-1', 'us-east-1']) {
        wan.heal(peer, 'eu-west-1');
        wan.heal('eu-west-1', peer);
      }
    }
  });

  it('answers /healthz, /edge/status and /metrics with its view of every region', async () => {
    const edge = track(await edgeOver(cluster.cfg, { policy: 'geo', health: FAST_HEALTH }));
    await viaEdge(edge, 'GET', '/v1/settings/geo', { headers: { 'meridian-client-location': PARIS } });
    const h = await call(edge.url, 'GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { edge: 'us-east-1', status: 'ok' });
    const s = await call(edge.url, 'GET', '/edge/status');
    const status = s.json as {
      edge: string;
      policy: string;
      regions: { region: string; status: string; requests: number; srttMs: number }[];
    };
    assert.equal(status.policy, 'geo');
    assert.deepEqual(
      status.regions.map((r) => [r.region, r.status]),
      [
        ['us-east-1', 'up'],
        ['eu-west-1', 'up'],
        ['ap-northeast-1', 'up'],
      ],
    );
    assert.equal(status.regions.find((r) => r.region === 'eu-west-1')!.requests, 1);
    assert.ok(status.regions.every((r) => typeof r.srttMs === 'number'));
    const m = await call(edge.url, 'GET', '/metrics');
    assert.match(m.text, /meridian_edge_region_up\{region="eu-west-1",edge="us-east-1"\} 1/);
    assert.match(m.text, /meridian_edge_region_requests_total\{region="eu-west-1",edge="us-east-1"\} 1/);
    assert.match(m.text, /meridian_edge_region_srtt_ms\{region="ap-northeast-1"/);
    const missing = await call(edge.url, 'GET', '/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['meridian-edge'], 'us-east-1');
  });
});
