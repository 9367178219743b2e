/**
 * The simulator's users reach regions through the edge's routing code (src/sim/edge.ts over
 * src/core/routing): what its edge does shows in the history, a request per region it reached.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../src/adapters/config.js';
import { EDGE_DEFAULTS } from '../src/core/routing/index.js';
import { DEFAULT_UPSTREAM } from '../src/servers/edge/upstreams.js';
import { DEFAULT_SIM, type SimOptions, simulate } from '../src/sim/index.js';

const run = (o: Partial<SimOptions> & { seed: number }) =>
  simulate({ ...DEFAULT_SIM, durationMs: 4000, opsPerSec: 400, ...o } as SimOptions);

describe('simulated users go through their edge', () => {
  it('a 421 is replayed by the edge to the home it names, and only the home takes a pinned write', async () => {
    const r = await run({ seed: 3, faults: 'none' });
    const ops = r.history.ops;
    const replays = ops.filter((o) => o.replayOf !== undefined && ops[o.replayOf]!.result === 'refused');
    assert.ok(replays.length > 20, `${replays.length} replays`);
    for (const o of replays) assert.equal(o.region, ops[o.replayOf!]!.replayRegion, `op #${o.id}`);
    const pinned = ops.filter((o) => o.home !== undefined && o.kind === 'put' && o.result === 'ok');
    assert.ok(pinned.length > 50);
    for (const o of pinned) assert.equal(o.region, o.home, `op #${o.id}`);
    assert.deepEqual(r.violations, []);
  });

  it('an idempotent request refused by a down node is retried once in another region; a POST is not', async () => {
    const r = await run({ seed: 2, faults: 'crashes', durationMs: 8000 });
    const ops = r.history.ops;
    const refused = ops.filter((o) => o.result === 'unavailable');
    assert.ok(refused.length > 0, 'some requests reached a down node');
    const retried = ops.filter((o) => o.replayOf !== undefined && ops[o.replayOf]!.result === 'unavailable');
    assert.ok(retried.length > 0, 'the edge retried some elsewhere');
    for (const o of retried) {
      assert.notEqual(o.region, ops[o.replayOf!]!.region);
      assert.ok(['get', 'put', 'delete', 'clear'].includes(o.kind), `${o.kind} is idempotent`);
    }
    const followed = new Set(ops.map((o) => o.replayOf));
    const posts = refused.filter((o) => ['increment', 'add', 'remove'].includes(o.kind));
    assert.ok(posts.length > 0, 'some POSTs reached a down node');
    for (const o of posts) assert.ok(!followed.has(o.id), `POST op #${o.id} was not retried`);
    assert.deepEqual(r.violations, []);
  });

  it('is deterministic: the same seed routes every request the same way', async () => {
    const key = async () =>
      (await run({ seed: 5, faults: 'heavy' })).history.ops
        .map((o) => `${o.region}:${o.kind}:${o.result}`)
        .join(',');
    assert.equal(await key(), await key());
  });

  it('runs the edge with the defaults a configuration without an edge section gets', () => {
    const cfg = parseConfig({
      secrets: { clusterSecret: 'a-cluster-secret-of-32-characters' },
      regions: [
        {
          id: 'us-east-1',
          lat: 38.9,
          lon: -77.4,
          node: { listen: { port: 7070 }, url: 'http://127.0.0.1:7070' },
        },
      ],
    });
    assert.equal(cfg.edge.policy, EDGE_DEFAULTS.policy);
    assert.equal(cfg.edge.stickyMs, EDGE_DEFAULTS.stickyMs);
    for (const [k, v] of Object.entries(EDGE_DEFAULTS.health)) {
      assert.equal(cfg.edge.health[k as keyof typeof cfg.edge.health], v, `health.${k}`);
    }
    assert.equal(cfg.node.maxWaitMs, EDGE_DEFAULTS.nodeMaxWaitMs);
    assert.equal(DEFAULT_UPSTREAM.headersTimeoutMs, EDGE_DEFAULTS.headersTimeoutMs);
  });
});
