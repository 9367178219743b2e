/**
 * The lab's pieces without processes: the address plan, the generated config (secrets kept across
 * restarts, lab collections, routes through the WAN proxies), chaos parsing, rolling statistics,
 * the supervisor's process groups, and the simulated users.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, nodeUrlFrom } from '../src/adapters/config.js';
import { chaosFromJson, parseChaos } from '../src/lab/chaos.js';
import { labPaths, readAdminToken, writeLabConfig } from '../src/lab/lab-config.js';
import { labPlan, parseRegionList } from '../src/lab/plan.js';
import { conflictsFromMetrics } from '../src/lab/probes.js';
import { LabStats } from '../src/lab/stats.js';
import { Supervisor } from '../src/lab/supervisor.js';
import { CITIES, makeUsers, userOneWayMs } from '../src/lab/users.js';

describe('lab address plan', () => {
  it('puts region k on 127.0.k.1 with node :7070 and edge :8080, WAN proxies on the region address', () => {
    const p = labPlan(['us-east-1', 'eu-west-1', 'ap-northeast-1']);
    assert.deepEqual(
      p.regions.map((r) => [r.id, r.nodeUrl, r.edgeUrl]),
      [
        ['us-east-1', 'http://127.0.1.1:7070', 'http://127.0.1.1:8080'],
        ['eu-west-1', 'http://127.0.2.1:7070', 'http://127.0.2.1:8080'],
        ['ap-northeast-1', 'http://127.0.3.1:7070', 'http://127.0.3.1:8080'],
      ],
    );
    assert.equal(p.links.length, 6);
    const l = p.links.find((x) => x.from === 'us-east-1' && x.to === 'ap-northeast-1');
    assert.deepEqual(
      [l?.listenHost, l?.listenPort, l?.targetHost, l?.targetPort],
      ['127.0.1.1', 7103, '127.0.3.1', 7070],
    );
    assert.ok((l?.oneWayMs ?? 0) > 50, 'one-way = RTT/2 from the region table');
    assert.equal(p.labUrl, 'http://127.0.0.1:8080');
  });

  it('takes 2 to 10 known regions and refuses the rest with the reason', () => {
    assert.deepEqual(parseRegionList(undefined), ['us-east-1', 'eu-west-1', 'ap-northeast-1']);
    assert.throws(() => parseRegionList('us-east-1'), /2 to 10/);
    assert.throws(() => parseRegionList('us-east-1,mars-1'), /unknown region 'mars-1'/);
    assert.throws(() => parseRegionList('us-east-1,us-east-1'), /twice/);
    const all = labPlan(
      parseRegionList(
        'us-east-1,us-west-1,us-west-2,eu-west-1,eu-central-1,ap-northeast-1,ap-northeast-2,ap-southeast-1,ap-southeast-2,sa-east-1',
      ),
    );
    assert.equal(all.regions[9]?.host, '127.0.10.1');
    assert.equal(all.links.length, 90);
  });
});

describe('lab config', () => {
  it('routes every region through the WAN proxies, declares the lab collections and keeps secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-labcfg-'));
    try {
      const plan = labPlan(['us-east-1', 'eu-west-1', 'eu-central-1']);
      const paths = labPaths(dir);
      const cfg = writeLabConfig(plan, paths, 'sqlite');
      const again = loadConfig(paths.config);
      assert.equal(again.secrets.adminToken, cfg.secrets.adminToken);
      assert.equal(nodeUrlFrom(again, 'us-east-1', 'eu-west-1'), 'http://127.0.1.1:7102');
      assert.equal(nodeUrlFrom(again, 'eu-west-1', 'eu-west-1'), 'http://127.0.2.1:7070');
      const cols = Object.fromEntries(again.collections.map((c) => [c.name, c]));
      assert.deepEqual(Object.keys(cols), [
        'profiles',
        'settings',
        'likes',
        'tags',
        'accounts',
        'eu-profiles',
      ]);
      assert.deepEqual(cols.accounts?.replication, { mode: 'sync', acks: 'majority' });
      assert.deepEqual(cols['eu-profiles']?.residency, ['eu-west-1', 'eu-central-1']);
      assert.equal(again.store.kind, 'sqlite');
      // A restart keeps the secrets (and so tokens and the data they protect).
      const second = writeLabConfig(plan, paths, 'sqlite');
      assert.equal(second.secrets.adminToken, cfg.secrets.adminToken);
      assert.equal(second.secrets.clusterSecret, cfg.secrets.clusterSecret);
      assert.equal(readAdminToken(dir), cfg.secrets.adminToken);
      assert.equal(statSync(paths.adminToken).mode & 0o077, 0, 'admin token readable by its owner only');
      assert.ok(existsSync(paths.logs) && existsSync(paths.data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves eu-profiles out of a lab without an EU region', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-labcfg-'));
    try {
      const cfg = writeLabConfig(labPlan(['us-east-1', 'ap-northeast-1']), labPaths(dir), 'memory');
      assert.ok(!cfg.collections.some((c) => c.name === 'eu-profiles'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('chaos actions', () => {
  it('parses the CLI words and the API JSON into the same actions', () => {
    assert.deepEqual(parseChaos(['kill', 'eu-west-1', '--with-edge']), {
      action: 'kill',
      region: 'eu-west-1',
      withEdge: true,
    });
    assert.deepEqual(parseChaos(['partition', 'a', 'b']), { action: 'partition', a: 'a', b: 'b' });
    assert.deepEqual(parseChaos(['partition', 'a']), { action: 'partition', a: 'a' });
    assert.deepEqual(parseChaos(['heal']), { action: 'heal' });
    assert.deepEqual(parseChaos(['delay', 'a', 'b', '120']), { action: 'delay', a: 'a', b: 'b', ms: 120 });
    assert.deepEqual(parseChaos(['skew', 'a', '-2500']), { action: 'skew', region: 'a', ms: -2500 });
    assert.throws(() => parseChaos(['delay', 'a', 'b', 'soon']), /MS must be a number/);
    assert.throws(() => parseChaos(['explode']), /unknown chaos action/);
    assert.deepEqual(chaosFromJson({ action: 'kill', region: 'x' }), {
      action: 'kill',
      region: 'x',
      withEdge: false,
    });
    assert.throws(() => chaosFromJson({ action: 'skew', region: 'x' }), /"ms" must be a number/);
    assert.throws(() => chaosFromJson({ action: 'rm -rf' }), /must be one of/);
  });
});

describe('lab statistics', () => {
  it('computes rates per serving region and edge, flows, latency quantiles and lag', () => {
    const s = new LabStats();
    const t0 = 1_000_000;
    for (let i = 0; i < 50; i++) {
      s.record({
        atMs: t0 + i * 100,
        edge: 'a',
        served: i < 25 ? 'a' : 'b',
        op: 'get',
        status: 200,
        latencyMs: i,
      });
    }
    s.record({ atMs: t0 + 4900, edge: 'a', served: undefined, op: 'get', status: 0, latencyMs: 5 });
    s.recordLag('a', 'b', t0, 40);
    s.recordLag('a', 'b', t0 + 10, 60);
    const snap = s.snapshot(t0 + 4999, ['a', 'b'], 5);
    assert.ok(Math.abs((snap.regions.a?.edgeRps ?? 0) - 51 / 5) < 0.01);
    assert.ok(Math.abs((snap.regions.b?.servedRps ?? 0) - 25 / 5) < 0.01);
    assert.ok((snap.flows['a>b'] ?? 0) > 0);
    assert.ok(snap.errorRps > 0);
    assert.equal(snap.regions.b?.p99Ms, 49);
    assert.equal(snap.lag['a>b']?.lastMs, 60);
  });

  it('reads conflicts from a region node /metrics, zero when declared but not counted yet', () => {
    assert.equal(conflictsFromMetrics('# TYPE meridian_conflicts_total counter\n'), 0);
    assert.equal(
      conflictsFromMetrics(
        'meridian_conflicts_total{collection="settings"} 3\nmeridian_conflicts_total{collection="x"} 2\nother 9\n',
      ),
      5,
    );
    assert.equal(conflictsFromMetrics('other 1\n'), undefined);
  });
});

describe('simulated users', () => {
  it('spreads users over cities by weight and charges a WAN delay that grows with distance', () => {
    const users = makeUsers(120);
    assert.equal(new Set(users.map((u) => u.id)).size, 120);
    const ny = users.filter((u) => u.city === 'New York').length;
    const dublin = users.filter((u) => u.city === 'Dublin').length;
    assert.ok(ny > dublin * 3, `${ny} in New York vs ${dublin} in Dublin`);
    assert.ok(new Set(users.map((u) => u.city)).size === CITIES.length);
    const virginia = { lat: 38.9, lon: -77.4 };
    assert.ok(userOneWayMs({ lat: 40.7, lon: -74 }, virginia) < 10);
    assert.ok(userOneWayMs({ lat: 35.7, lon: 139.7 }, virginia) > 70);
  });
});

describe('supervisor', () => {
  it('runs children in their own process group, logs to a file and stops them all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-sup-'));
    try {
      const sup = new Supervisor(dir);
      // `meridian` with no command prints usage and exits 2: enough to see the log and the exit.
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(dir, 'logs'));
      sup.start({ name: 'usage', args: [] });
      const end = Date.now() + 20_000;
      while (sup.isRunning('usage') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.equal(sup.isRunning('usage'), false);
      assert.match(readFileSync(join(dir, 'logs', 'usage.log'), 'utf8'), /usage: meridian <command>/);
      const recorded = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as { pids: number[] };
      assert.equal(recorded.pids.length, 1);
      await sup.stopAll();
      assert.deepEqual(sup.leftovers(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
