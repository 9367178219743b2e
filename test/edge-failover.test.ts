/**
 * The edge when regions die: retry of idempotent requests on a dead region (and never of a POST
 * without a key), ejection on 5xx but not on 504, probe-driven fall and rise, and the failover
 * test: a region node is killed under steady load and no idempotent request fails, and none is
 * sent to the dead region after its ejection.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../src/adapters/config.js';
import { WanEmulator } from '../src/lab/wan/index.js';
import type { Edge, EdgeEvent } from '../src/servers/edge/index.js';
import { edgeOver, type FakeRegion, recordEvents, startFakeRegion, viaEdge } from './edge-support.js';
import { type Cluster, eventually, startCluster } from './support/cluster.js';

/** Position of the event that marked `region` down, or -1. */
function ejectionIndex(events: readonly EdgeEvent[], region: string): number {
  return events.findIndex(
    (e) => e.kind === 'transition' && e.transition.region === region && e.transition.to === 'down',
  );
}

/** Probes that never come again after the first round: only live traffic can eject a region. */
const NO_PROBES = { intervalMs: 3_600_000, timeoutMs: 2000, fall: 3, rise: 2 };
/** The lab's probe settings. */
const LAB_HEALTH = { intervalMs: 200, timeoutMs: 1000, fall: 3, rise: 2 };

const routeOf = (e: EdgeEvent): [string, string] | undefined =>
  e.kind === 'dispatch' ? [e.region, e.reason] : undefined;

describe('edge failover over real region nodes', () => {
  let cluster: Cluster;
  const edges: Edge[] = [];
  const track = (e: Edge): Edge => {
    edges.push(e);
    return e;
  };

  before(async () => {
    cluster = await startCluster({ store: 'memory' });
  });

  after(async () => {
    for (const e of edges) await e.close();
    await cluster?.stop();
  });

  it('retries an idempotent request once in the next region when its region is dead; never a POST without a key', async () => {
    const priority = ['eu-west-1', 'us-east-1', 'ap-northeast-1'];
    const open = () => edgeOver(cluster.cfg, { policy: 'failover', priority, health: NO_PROBES });
    const [getEdge, postEdge, keyedEdge] = [track(await open()), track(await open()), track(await open())];
    const gets = recordEvents(getEdge);
    const posts = recordEvents(postEdge);
    const keyed = recordEvents(keyedEdge);
    await cluster.kill('eu-west-1');
    try {
      // GET: eu-west-1 refuses the connection, the edge ejects it and retries in us-east-1.
      const r = await viaEdge(getEdge, 'GET', '/v1/likes/k');
      assert.equal(r.status, 404, JSON.stringify(r.json)); // answered (no such counter yet), not failed
      assert.deepEqual(r.route, { policy: 'failover', region: 'us-east-1', reason: 'retry' });
      assert.deepEqual(gets.events.map(routeOf).filter(Boolean), [
        ['eu-west-1', 'priority'],
        ['us-east-1', 'retry'],
      ]);
      assert.equal(getEdge.table.isUp('eu-west-1'), false);
      const next = await viaEdge(getEdge, 'GET', '/v1/likes/k');
      assert.deepEqual(next.route, { policy: 'failover', region: 'us-east-1', reason: 'failover' });
      assert.equal(gets.dispatches('eu-west-1').length, 1, 'nothing more was sent to the ejected region');

      // POST without Idempotency-Key: one try only, the client learns it failed.
      const p = await viaEdge(postEdge, 'POST', '/v1/likes/k/increment', { body: { by: 1 } });
      assert.equal(p.status, 503);
      assert.equal((p.json as { error: { code: string } }).error.code, 'unavailable');
      assert.deepEqual(posts.events.map(routeOf).filter(Boolean), [['eu-west-1', 'priority']]);

      // POST with a key is idempotent, so it is retried.
      const k = await viaEdge(keyedEdge, 'POST', '/v1/likes/k/increment', {
        body: { by: 1 },
        headers: { 'idempotency-key': 'edge-failover-1' },
      });
      assert.equal(k.status, 200, JSON.stringify(k.json));
      assert.deepEqual(k.route, { policy: 'failover', region: 'us-east-1', reason: 'retry' });
      assert.equal(keyed.dispatches().length, 2);
    } finally {
      await cluster.restart('eu-west-1');
    }
  });

  it('kill a region node under steady load: no idempotent request fails, none is sent to it after ejection', async () => {
    const edge = track(
      await edgeOver(cluster.cfg, {
        policy: 'failover',
        priority: ['ap-northeast-1', 'us-east-1', 'eu-west-1'],
        health: LAB_HEALTH,
      }),
    );
    const seen = recordEvents(edge);
    const keys = Array.from({ length: 8 }, (_, i) => `load-${i}`);
    for (const key of keys)
      assert.equal((await viaEdge(edge, 'PUT', `/v1/settings/${key}`, { body: 0 })).status, 200);

    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const worker = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const key = keys[(w + n) % keys.length]!;
        const write = n % 4 === 0;
        try {
          const r = write
            ? await viaEdge(edge, 'PUT', `/v1/settings/${key}`, { body: n })
            : await viaEdge(edge, 'GET', `/v1/settings/${key}`);
          if (r.status === 200) ok++;
          else failures.push(`${write ? 'PUT' : 'GET'} ${key}: ${r.status} ${JSON.stringify(r.json)}`);
        } catch (e) {
          failures.push(`${write ? 'PUT' : 'GET'} ${key}: ${(e as Error).message}`);
        }
      }
    };
    const load = Promise.all(keys.map((_, w) => worker(w)));
    try {
      await eventually(
        'steady load on ap-northeast-1',
        async () => seen.dispatches('ap-northeast-1').length >= 200,
      );
      const killedAt = Date.now();
      await cluster.kill('ap-northeast-1');
      const ejected = await eventually(
        'ap-northeast-1 to be ejected',
        async () => ejectionIndex(seen.events, 'ap-northeast-1') + 1,
      );
      const okAtEjection = ok;
      await eventually('300 more answers after the ejection', async () => ok >= okAtEjection + 300);
      stop = true;
      await load;

      assert.deepEqual(failures, [], 'no idempotent request failed');
      const after = seen.events
        .slice(ejected)
        .filter((e) => e.kind === 'dispatch' && e.region === 'ap-northeast-1');
      assert.deepEqual(after, [], 'nothing was sent to the dead region after its ejection');
      const toDead = seen.dispatches('ap-northeast-1');
      const last = toDead[toDead.length - 1]!;
      const ejection = seen.events[ejected - 1]!;
      assert.ok(ejection.kind === 'transition');
      const lastMs = (last.kind === 'dispatch' ? last.atMs : 0) - killedAt;
      assert.ok(lastMs < 1000, `last request to the dead region ${lastMs} ms after the kill`);
      process.stdout.write(
        `# failover: ejected ${ejection.transition.atMs - killedAt} ms after the kill (${ejection.transition.reason}); last request routed there ${lastMs} ms after; ${ok} answers, 0 failed\n`,
      );
    } finally {
      stop = true;
      await load;
    }

    // When it comes back, `rise` good probes return it to the head of the priority list.
    await cluster.restart('ap-northeast-1');
    await eventually('ap-northeast-1 to rise', async () => edge.table.isUp('ap-northeast-1'), 10_000);
    const r = await viaEdge(edge, 'GET', `/v1/settings/${keys[0]}`);
    assert.deepEqual(r.route, { policy: 'failover', region: 'ap-northeast-1', reason: 'priority' });
  });
});

describe('edge failover when a region goes silent (blackhole)', () => {
  let cluster: Cluster;
  const wan = new WanEmulator({ handshake: false });
  let edge: Edge | undefined;

  before(async () => {
    cluster = await startCluster({ store: 'memory' });
  });

  after(async () => {
    await edge?.close();
    await cluster?.stop();
    await wan.close();
  });

  it('cancels the requests hung on a silent region at its ejection and retries them elsewhere', async () => {
    // The edge reaches each node through a WAN link of its own, so one path can drop everything.
    const routes: Record<string, string> = {};
    for (const id of cluster.regions) {
      const u = new URL(cluster.url(id));
      const via = await wan.addLink({
        from: 'edge',
        to: id,
        target: { host: u.hostname, port: Number(u.port) },
      });
      routes[id] = `http://${via.host}:${via.port}`;
    }
    const health = { intervalMs: 200, timeoutMs: 500, fall: 3, rise: 2 };
    edge = await edgeOver(
      cluster.cfg,
      { policy: 'failover', priority: ['ap-northeast-1', 'us-east-1', 'eu-west-1'], health },
      { routes },
    );
    const seen = recordEvents(edge);
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const worker = async (w: number): Promise<void> => {
      while (!stop) {
        try {
          const r = await viaEdge(edge!, 'PUT', `/v1/settings/silent-${w}`, { body: ok });
          if (r.status === 200) ok++;
          else failures.push(`${r.status} ${JSON.stringify(r.json)}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(worker));
    try {
      await eventually(
        'steady load on ap-northeast-1',
        async () => seen.dispatches('ap-northeast-1').length >= 100,
      );
      const cutAt = Date.now();
      wan.cut('edge', 'ap-northeast-1', 'partition');
      const ejected = await eventually(
        'ap-northeast-1 to be ejected',
        async () => ejectionIndex(seen.events, 'ap-northeast-1') + 1,
      );
      const atEjection = ok;
      await eventually('100 more answers', async () => ok >= atEjection + 100);
      stop = true;
      await load;
      assert.deepEqual(failures, [], 'no idempotent request failed');
      const ejection = seen.events[ejected - 1]!;
      assert.ok(ejection.kind === 'transition');
      const ejectedMs = ejection.transition.atMs - cutAt;
      // Overlapping probes: about timeoutMs + (fall - 1) * intervalMs = 900 ms, with room for a busy machine.
      assert.ok(ejectedMs < 3000, `ejected ${ejectedMs} ms after the cut`);
      const later = seen.events
        .slice(ejected)
        .filter((e) => e.kind === 'dispatch' && e.region === 'ap-northeast-1');
      assert.deepEqual(later, [], 'nothing was sent to the silent region after its ejection');
      const retries = seen.events.slice(ejected).filter((e) => e.kind === 'dispatch' && e.reason === 'retry');
      assert.ok(retries.length >= 1, 'the hung requests were retried');
      process.stdout.write(
        `# blackhole: ejected ${ejectedMs} ms after the cut; ${retries.length} hung requests retried\n`,
      );
    } finally {
      stop = true;
      await load;
      wan.heal('edge', 'ap-northeast-1');
    }
  });
});

describe('edge health rules (stand-in regions with scripted answers)', () => {
  let a: FakeRegion;
  let b: FakeRegion;
  let edge: Edge;

  before(async () => {
    a = await startFakeRegion('us-east-1');
    b = await startFakeRegion('eu-west-1');
    const cfg = parseConfig({
      secrets: { clusterSecret: 'edge-test-cluster-secret', adminToken: 'edge-test-admin-token' },
      regions: [
        { id: 'us-east-1', lat: 38.9, lon: -77.4, node: { listen: { port: 1 }, url: a.url } },
        { id: 'eu-west-1', lat: 53.3, lon: -6.3, node: { listen: { port: 1 }, url: b.url } },
      ],
    });
    edge = await edgeOver(cfg, {
      policy: 'failover',
      priority: ['us-east-1', 'eu-west-1'],
      health: { intervalMs: 100, timeoutMs: 1000, fall: 2, rise: 2 },
    });
  });

  after(async () => {
    await edge?.close();
    await a?.close();
    await b?.close();
  });

  // Issue 18: a 5xx of live traffic is a region that answered; only its health endpoint, refused
  // or reset connections and silence are evidence that it is gone.
  it('a 500 is retried elsewhere but ejects nothing; a 504 is delivered and ejects nothing', async () => {
    a.failWith = 504;
    const timeout = await viaEdge(edge, 'PUT', '/v1/accounts/x', { body: 1 });
    assert.equal(timeout.status, 504);
    assert.equal(edge.table.isUp('us-east-1'), true);
    a.failWith = 500;
    const r = await viaEdge(edge, 'GET', '/v1/settings/x');
    assert.equal(r.status, 200);
    assert.deepEqual(r.route, { policy: 'failover', region: 'eu-west-1', reason: 'retry' });
    assert.equal(edge.table.isUp('us-east-1'), true);
    a.failWith = undefined;
  });

  it('a region whose /healthz says 503 falls after `fall` probes and rises after `rise`', async () => {
    a.healthStatus = 503;
    await eventually('us-east-1 to fall', async () => !edge.table.isUp('us-east-1'), 5000);
    const r = await viaEdge(edge, 'GET', '/v1/settings/x');
    assert.deepEqual(r.route, { policy: 'failover', region: 'eu-west-1', reason: 'failover' });
    a.healthStatus = 200;
    await eventually('us-east-1 to rise', async () => edge.table.isUp('us-east-1'), 5000);
    const s = edge.status().regions.find((x) => x.region === 'us-east-1')!;
    assert.ok(s.probesFailed >= 2);
  });

  it('a request the edge cannot forward is the client’s 400, not a region failure', async () => {
    const port = Number(new URL(edge.url).port);
    const send = (bytes: string) =>
      new Promise<string>((resolve) => {
        const s = connect(port, '127.0.0.1');
        let out = '';
        s.on('data', (d) => {
          out += d.toString('latin1');
        });
        s.on('close', () => resolve(out));
        s.write(bytes, 'latin1');
      });
    assert.match(await send('GET /v1/settings/x HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(
      await send('TRACE /v1/settings/x HTTP/1.1\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 400 [\s\S]*meridian-edge: us-east-1/,
    );
    assert.equal(edge.table.isUp('us-east-1'), true);
    assert.equal(edge.table.isUp('eu-west-1'), true);
  });

  it('a POST without a key that gets a 500 is not retried', async () => {
    const seen = recordEvents(edge);
    a.failWith = 500;
    try {
      const r = await viaEdge(edge, 'POST', '/v1/likes/x/increment', { body: { by: 1 } });
      assert.equal(r.status, 500);
      assert.equal(seen.dispatches().length, 1);
    } finally {
      a.failWith = undefined;
    }
  });
});
