/**
 * Replication between real region nodes: log compaction once peers acknowledge, reconnection after
 * a peer's downtime, and a snapshot for a peer that is behind what the log retains.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeToken, encodeToken } from '../src/core/version.js';
import { buildMesh, meshRoutes, WanEmulator } from '../src/lab/wan/index.js';
import { type Cluster, call, eventually, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

function metric(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => inside.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

describe('replication: compaction, reconnection, snapshots (SQLite)', { timeout: 180_000 }, () => {
  let c: Cluster;
  const status = async (r: string) =>
    (
      await call(c.url(r), 'GET', '/internal/v1/status', {
        headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}` },
      })
    ).json as { truncated: Record<string, number>; stats: { version: Record<string, number> } };
  const metrics = async (r: string) => (await call(c.url(r), 'GET', '/metrics')).text;

  before(async () => {
    c = await startCluster({
      store: 'sqlite',
      // Reads below wait up to 20 s for a version; the node clamps a longer ask to its maxWaitMs.
      node: { maxWaitMs: 20_000 },
      replication: { logKeep: 0, logMaxRetain: 20, compactIntervalMs: 100 },
    });
  });
  after(async () => {
    await c?.stop();
  });

  it('truncates the log once every peer has acknowledged', async () => {
    let last = 0;
    for (let i = 0; i < 10; i++) {
      const r = await call(c.url(US), 'PUT', `/v1/settings/k${i}`, { body: i });
      last = decodeToken(r.headers['meridian-version']!)[US]!;
    }
    await eventually(
      'us-east-1 to truncate its own changes',
      async () => ((await status(US)).truncated[US] ?? 0) >= last,
    );
  });

  it('notices a peer going away, and reconnects when it is back', async () => {
    await c.kill(AP);
    await eventually('stream from ap-northeast-1 to drop', async () => {
      return metric(await metrics(US), 'meridian_replication_stream_connected', { peer: AP }) === 0;
    });
  });

  it('sends a snapshot to a peer that is behind the retained log', async () => {
    let token = '';
    for (let i = 0; i < 60; i++) {
      const r = await call(c.url(US), 'PUT', `/v1/settings/snap${i}`, { body: { i } });
      assert.equal(r.status, 200);
      token = r.headers['meridian-version']!;
    }
    const want = decodeToken(token)[US]!;
    // ap-northeast-1 is down and cannot acknowledge: past logMaxRetain the log is cut anyway.
    await eventually(
      'forced truncation past logMaxRetain',
      async () => ((await status(US)).truncated[US] ?? 0) >= want - 20,
    );
    await c.restart(AP);
    const g = await call(c.url(AP), 'GET', '/v1/settings/snap59', {
      headers: { 'meridian-min-version': token, 'meridian-max-wait-ms': '20000' },
    });
    assert.equal(g.status, 200, g.text);
    for (let i = 0; i < 60; i += 7) {
      const r = await call(c.url(AP), 'GET', `/v1/settings/snap${i}`);
      assert.deepEqual((r.json as { value: unknown }).value, { i });
    }
    const m = await metrics(AP);
    const snaps =
      (metric(m, 'meridian_snapshots_applied_total', { from: US }) ?? 0) +
      (metric(m, 'meridian_snapshots_applied_total', { from: EU }) ?? 0);
    assert.ok(snaps >= 1, 'ap-northeast-1 applied a snapshot');
    await eventually('us-east-1 to see the stream from ap-northeast-1 again', async () => {
      return metric(await metrics(US), 'meridian_replication_stream_connected', { peer: AP }) === 1;
    });
    // Writes after the snapshot flow as a stream again.
    const after = await call(c.url(US), 'PUT', '/v1/settings/after-snapshot', { body: 1 });
    const g2 = await call(c.url(AP), 'GET', '/v1/settings/after-snapshot', {
      headers: {
        'meridian-min-version': after.headers['meridian-version']!,
        'meridian-max-wait-ms': '10000',
      },
    });
    assert.equal(g2.status, 200);
    assert.equal(encodeToken(decodeToken(g2.headers['meridian-version']!)).length > 0, true);
  });
});

describe('replication: relay through a third region when a direct link is cut', { timeout: 120_000 }, () => {
  let c: Cluster;
  let wan: WanEmulator;
  const metrics = async (r: string) => (await call(c.url(r), 'GET', '/metrics')).text;
  before(async () => {
    wan = new WanEmulator();
    c = await startCluster({
      store: 'sqlite',
      // Reads below wait up to 15 s for a relay; the node clamps a longer ask to its maxWaitMs.
      node: { maxWaitMs: 20_000 },
      configure: async (raw, { addresses }) => {
        const mesh = await buildMesh(wan, {
          regions: [US, EU, AP].map((id) => ({ id, target: addresses[id]! })),
          scale: 0.1,
        });
        const routes = meshRoutes(mesh);
        for (const r of raw.regions) r.routes = routes[r.id] ?? {};
      },
    });
  });
  after(async () => {
    await c?.stop();
    await wan?.close();
  });

  it('eu-west-1 still gets ap-northeast-1 writes, through us-east-1, while their link is partitioned', async () => {
    const first = await call(c.url(AP), 'PUT', '/v1/settings/relay-0', { body: 0 });
    const g0 = await call(c.url(EU), 'GET', '/v1/settings/relay-0', {
      headers: { 'meridian-min-version': first.headers['meridian-version']!, 'meridian-max-wait-ms': '5000' },
    });
    assert.equal(g0.status, 200);
    wan.split(EU, AP, 'partition');
    const w = await call(c.url(AP), 'PUT', '/v1/settings/relay-1', { body: 1 });
    assert.equal(w.status, 200);
    const g = await call(c.url(EU), 'GET', '/v1/settings/relay-1', {
      headers: { 'meridian-min-version': w.headers['meridian-version']!, 'meridian-max-wait-ms': '15000' },
    });
    assert.equal(g.status, 200, g.text);
    const status = (
      await call(c.url(EU), 'GET', '/internal/v1/status', {
        headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}` },
      })
    ).json as { links: Record<string, { connected: boolean }> };
    assert.equal(status.links[AP]!.connected, false, 'the direct stream is down');
    wan.healAll();
  });

  it('concurrent writes to one key converge everywhere, and the conflict is counted', async () => {
    wan.split(US, EU, 'partition');
    // Neither region can see the other's write: the link is cut, and a relay takes seconds to ask for.
    const [a, b] = await Promise.all([
      call(c.url(US), 'PUT', '/v1/settings/contested', { body: 'from-us' }),
      call(c.url(EU), 'PUT', '/v1/settings/contested', { body: 'from-eu' }),
    ]);
    assert.deepEqual([a.status, b.status], [200, 200]);
    wan.healAll();
    const token = encodeToken({
      ...decodeToken(a.headers['meridian-version']!),
      ...decodeToken(b.headers['meridian-version']!),
    });
    const values = await Promise.all(
      [US, EU, AP].map(async (r) => {
        const g = await call(c.url(r), 'GET', '/v1/settings/contested', {
          headers: { 'meridian-min-version': token, 'meridian-max-wait-ms': '20000' },
        });
        assert.equal(g.status, 200, `${r}: ${g.text}`);
        return (g.json as { value: string }).value;
      }),
    );
    assert.equal(new Set(values).size, 1, `one winner everywhere: ${values.join(', ')}`);
    const conflicts = await Promise.all(
      [US, EU, AP].map(
        async (r) => metric(await metrics(r), 'meridian_conflicts_total', { collection: 'settings' }) ?? 0,
      ),
    );
    assert.ok(conflicts.reduce((x, y) => x + y, 0) >= 1, `conflicts counted: ${conflicts.join(', ')}`);
  });
});
