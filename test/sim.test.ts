import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ALL_CHECKERS, DEFAULT_SIM, Prng, runReport, simulate, VirtualTime } from '../src/sim/index.js';
import { Network, NO_LINK_FAULTS } from '../src/sim/network.js';
import { DurableState, SimStore } from '../src/sim/storage.js';

const names = ALL_CHECKERS.map((c) => c.name);

function cli(args: string[]): { stdout: string; status: number | null } {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'sim', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { stdout: res.stdout, status: res.status };
}

describe('virtual time', () => {
  it('runs events in time order, same-instant events in insertion order, and settles promises between instants', async () => {
    const t = new VirtualTime();
    const seen: string[] = [];
    t.after(5, () => seen.push('b@5'));
    t.after(1, () => {
      seen.push('a@1');
      void Promise.resolve().then(() => t.after(0, () => seen.push(`c@${t.nowMs}`)));
    });
    t.after(5, () => seen.push('d@5'));
    const dead = { alive: true };
    t.after(3, () => seen.push('never'), dead);
    dead.alive = false;
    await t.runUntil(10);
    assert.deepEqual(seen, ['a@1', 'c@1', 'b@5', 'd@5']);
    assert.equal(t.nowMs, 10);
  });

  it('the seeded generator repeats itself and its forks are independent', () => {
    const a = new Prng(7);
    const b = new Prng(7);
    const xs = Array.from({ length: 5 }, () => a.u32());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b.u32()),
    );
    assert.notDeepEqual(
      Array.from({ length: 5 }, () => new Prng(7).fork('x').u32()),
      Array.from({ length: 5 }, () => new Prng(7).fork('y').u32()),
    );
  });
});

describe('simulated disk and network', () => {
  it('a crash loses the commits that were not yet durable, and only those', async () => {
    const t = new VirtualTime();
    const disk = new DurableState();
    const owner = { alive: true };
    const store = new SimStore(disk, t, owner, { fsyncMs: () => 10 });
    let durable = 0;
    void store.commit({ docs: [], changes: [], applied: { a: 1 }, kv: [] }).then(() => durable++);
    await t.runUntil(10);
    void store.commit({ docs: [], changes: [], applied: { a: 2 }, kv: [] }).then(() => durable++);
    await t.runUntil(15);
    owner.alive = false; // crash 5 ms into the second fsync
    await t.runUntil(100);
    assert.equal(durable, 1);
    assert.deepEqual(disk.state.applied, { a: 1 });
  });

  it('partitions cut traffic, one-way partitions in one direction only; delay is RTT/2', async () => {
    const ACK = { type: 'ack', reqId: 1, body: { region: 'a', applied: {} } } as const;
    const t = new VirtualTime();
    const net = new Network(t, new Prng(1), () => 40, NO_LINK_FAULTS);
    const got: string[] = [];
    net.onDeliver = (env) => got.push(`${env.from}>${env.to}@${t.nowMs}`);
    net.partition(['a'], ['b'], true);
    net.send('a', 'b', ACK);
    net.send('b', 'a', ACK);
    await t.runUntil(100);
    assert.deepEqual(got, ['b>a@40']);
    net.heal(['a'], ['b'], true);
    net.partition(['a'], ['b'], false);
    net.send('a', 'b', ACK);
    net.send('b', 'a', ACK);
    await t.runUntil(200);
    assert.equal(net.stats.partitioned, 3);
  });
});

describe('simulator runs', () => {
  it('a run without faults passes every checker and reports its figures', async () => {
    const r = await simulate({ ...DEFAULT_SIM, seed: 11, faults: 'none', durationMs: 3000, opsPerSec: 300 });
    assert.deepEqual(r.violations, []);
    assert.ok(r.figures.ops.ok > 500, `${r.figures.ops.ok} ops ok`);
    assert.equal(r.figures.lag.length, 6, 'one lag figure per directed link');
    for (const l of r.figures.lag) assert.ok(l.p50Ms > 0 && l.p99Ms >= l.p50Ms);
    assert.ok(r.history.quiesced);
    assert.equal(r.history.final.length, 3);
  });

  it('stored records are never mutated by the core (deep-frozen run stays clean)', async () => {
    const r = await simulate({
      ...DEFAULT_SIM,
      seed: 12,
      faults: 'heavy',
      durationMs: 3000,
      opsPerSec: 200,
      freeze: true,
    });
    assert.deepEqual(
      r.violations.map((v) => v.message),
      [],
    );
  });

  it('the same seed gives the same run; another seed another', async () => {
    const o = { ...DEFAULT_SIM, faults: 'heavy', durationMs: 3000, opsPerSec: 200 };
    const a = runReport(await simulate({ ...o, seed: 21 }), names);
    const b = runReport(await simulate({ ...o, seed: 21 }), names);
    const c = runReport(await simulate({ ...o, seed: 22 }), names);
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  it('`meridian sim` prints byte-identical output for the same seed', () => {
    const args = ['--seed', '5', '--duration', '2s', '--faults', 'heavy', '--rate', '200'];
    const first = cli(args);
    const second = cli(args);
    assert.equal(first.status, 0, first.stdout);
    assert.ok(first.stdout.includes('| checker'), first.stdout);
    assert.equal(first.stdout, second.stdout);
  });

  it('on a violation it names the checker, shows the history and the replay command, and exits 1', () => {
    const out = cli([
      '--seed',
      '1',
      '--duration',
      '3s',
      '--rate',
      '300',
      '--faults',
      'none',
      '--bug',
      'skipTokenWait',
    ]);
    assert.equal(out.status, 1);
    assert.match(out.stdout, /VIOLATION of (read-your-writes|monotonic-reads)/);
    assert.match(out.stdout, /history:\n {4}\d+\.\d{3}s/);
    const replay = /replay: meridian sim (.*)/.exec(out.stdout)?.[1];
    assert.ok(replay, 'a replay command is printed');
    const again = cli(replay.split(' '));
    assert.equal(again.stdout, out.stdout, 'the replay command reproduces the run exactly');
  });

  it('a sweep prints a progress line per seed and a summary', () => {
    const out = cli([
      '--seeds',
      '3',
      '--seed',
      '40',
      '--duration',
      '1s',
      '--faults',
      'light',
      '--rate',
      '100',
    ]);
    assert.equal(out.status, 0, out.stdout);
    assert.match(out.stdout, /\[1\/3\] seed 40: ok/);
    assert.match(out.stdout, /\[3\/3\] seed 42: ok/);
    assert.match(out.stdout, /seeds with a violation +\| 0/);
  });
});
