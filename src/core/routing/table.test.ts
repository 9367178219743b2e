import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RoutingTable } from './table.js';

const regions = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
];
const ctx = { config: { policy: 'latency' as const, weights: {}, priority: [] }, edgeLocation: regions[0]! };

describe('RoutingTable', () => {
  it('routes by probe RTT and ejects a region on a failed request until it rises again', () => {
    const t = new RoutingTable(regions, ctx, { fall: 3, rise: 2 }, 0);
    t.observe('us-east-1', { kind: 'probe-ok', rttMs: 30 }, 1);
    t.observe('eu-west-1', { kind: 'probe-ok', rttMs: 5 }, 1);
    assert.deepEqual(t.plan({ random: 0 }).order, ['eu-west-1', 'us-east-1']);
    t.dispatched('eu-west-1');
    const tr = t.observe('eu-west-1', { kind: 'request-failed', reason: 'ECONNREFUSED' }, 2);
    assert.equal(tr?.to, 'down');
    assert.equal(tr?.region, 'eu-west-1');
    assert.deepEqual(t.plan({ random: 0 }), { order: ['us-east-1'], reason: 'failover', panic: false });
    t.observe('eu-west-1', { kind: 'probe-ok', rttMs: 5 }, 3);
    assert.equal(t.isUp('eu-west-1'), false);
    assert.equal(t.observe('eu-west-1', { kind: 'probe-ok', rttMs: 5 }, 4)?.to, 'up');
    const eu = t.snapshot().find((s) => s.region === 'eu-west-1')!;
    assert.equal(eu.requests, 1);
    assert.equal(eu.errors, 1);
    assert.equal(eu.status, 'up');
    assert.equal(eu.probesOk, 3);
  });
});

const ten = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'us-west-1', lat: 37.4, lon: -122.1 },
  { id: 'us-west-2', lat: 45.6, lon: -121.2 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
  { id: 'eu-central-1', lat: 50.1, lon: 8.7 },
  { id: 'ap-northeast-1', lat: 35.7, lon: 139.7 },
  { id: 'ap-northeast-2', lat: 37.6, lon: 127.0 },
  { id: 'ap-southeast-1', lat: 1.35, lon: 103.8 },
  { id: 'ap-southeast-2', lat: -33.9, lon: 151.2 },
  { id: 'sa-east-1', lat: -23.5, lon: -46.6 },
];
const fromSaoPaulo = { ...ctx, edgeLocation: ten[9]! };

describe('RoutingTable health (issue 18)', () => {
  it('starts each path with a deadline from its distance, not one constant for all', () => {
    const t = new RoutingTable(ten, fromSaoPaulo, { timeoutMs: 400 }, 0);
    // São Paulo to Singapore is about 330 ms of round trip: a 400 ms deadline failed every probe.
    assert.ok(t.probeTimeoutMs('ap-southeast-1') > 500, `${t.probeTimeoutMs('ap-southeast-1')}`);
    assert.ok(t.probeTimeoutMs('sa-east-1') < t.probeTimeoutMs('us-east-1'));
  });

  it('holds no more than half the regions down, however many look dead', () => {
    const t = new RoutingTable(ten, fromSaoPaulo, { fall: 2 }, 0);
    for (const r of ten) {
      t.observe(r.id, { kind: 'probe-failed', reason: 'ECONNREFUSED', failure: 'refused' }, 1);
      t.observe(r.id, { kind: 'probe-failed', reason: 'ECONNREFUSED', failure: 'refused' }, 2);
    }
    assert.equal(t.snapshot().filter((s) => s.status === 'down').length, 5);
    assert.equal(t.snapshot().filter((s) => s.held).length, 5);
    // When a held-down region comes back, a held one may be ejected on its next failure.
    const down = t.snapshot().find((s) => s.status === 'down')!.region;
    t.observe(down, { kind: 'probe-ok', rttMs: 100 }, 3);
    t.observe(down, { kind: 'probe-ok', rttMs: 100 }, 4);
    const held = t.snapshot().find((s) => s.held)!.region;
    assert.equal(t.observe(held, { kind: 'probe-failed', reason: 'x', failure: 'refused' }, 5)?.to, 'down');
  });

  // Issue 18 on a loaded machine: a stalled WAN emulator silenced every path of every edge at once,
  // and each edge ejected whichever regions reached `fall` first.
  it('does not eject on silence while a quarter of the other regions are silent too', () => {
    const t = new RoutingTable(ten, fromSaoPaulo, { fall: 2 }, 0);
    const silent = { kind: 'probe-failed', reason: 'no answer', failure: 'timeout' } as const;
    for (const r of ten.slice(0, 4)) t.observe(r.id, silent, 1);
    for (const r of ten.slice(0, 4)) assert.equal(t.observe(r.id, silent, 2), undefined, r.id);
    assert.ok(t.snapshot().every((s) => s.status === 'up'));
    // The others answer again; the one still silent is ejected on its first failure after the
    // others' silence has left the window (the RTO ceiling, 2 s by default).
    for (const r of ten.slice(1, 4)) t.observe(r.id, { kind: 'probe-ok', rttMs: 100 }, 3);
    assert.equal(t.observe(ten[0]!.id, silent, 4), undefined, 'the stall was 2 ms ago');
    assert.equal(t.observe(ten[0]!.id, silent, 2003)?.to, 'down');
  });

  // Issue 18, ten-region lab with traffic: after one stall the short paths answered again before
  // the long paths' deadlines passed, so each long path was judged when only the long ones were
  // still failing, and the first ejections no longer counted as silence for the next.
  it('counts paths silent within the window, and regions ejected in it, as one stall', () => {
    const t = new RoutingTable(ten, fromSaoPaulo, { fall: 2 }, 0);
    const silent = { kind: 'probe-failed', reason: 'no answer', failure: 'timeout' } as const;
    const [s1, s2, l1, l2] = ten.map((r) => r.id);
    for (const r of [s1, s2, l1, l2]) t.observe(r!, silent, 100);
    // The short paths answer after the stall...
    t.observe(s1!, { kind: 'probe-ok', rttMs: 50 }, 300);
    t.observe(s2!, { kind: 'probe-ok', rttMs: 50 }, 300);
    // ...and the long paths' second deadlines pass later: still one stall.
    assert.equal(t.observe(l1!, silent, 600), undefined);
    assert.equal(t.observe(l2!, silent, 650), undefined);
    assert.ok(t.snapshot().every((s) => s.status === 'up'));
  });

  // The prober releases a round's held timeouts first failures first (src/servers/edge/prober.ts):
  // the order decides whether the shortest path's second timeout sees the others' silence.
  it("holds a second timeout delivered after its round's first timeouts, not before them", () => {
    const silent = { kind: 'probe-failed', reason: 'no answer', failure: 'timeout' } as const;
    const [shortest, ...longer] = ['us-east-1', 'us-west-1', 'us-west-2', 'eu-west-1'];
    const round = (order: 'by deadline' | 'first failures first'): string | undefined => {
      const t = new RoutingTable(ten, fromSaoPaulo, { fall: 2 }, 0);
      t.observe(shortest!, silent, 1);
      if (order === 'by deadline') {
        const tr = t.observe(shortest!, silent, 2);
        for (const r of longer) t.observe(r, silent, 2);
        return tr?.to;
      }
      for (const r of longer) t.observe(r, silent, 2);
      return t.observe(shortest!, silent, 2)?.to;
    };
    assert.equal(round('by deadline'), 'down', 'judged alone, the shortest path falls');
    assert.equal(round('first failures first'), undefined);
  });

  it('ejects a silent region while the others are heard', () => {
    const t = new RoutingTable(ten, fromSaoPaulo, { fall: 2 }, 0);
    const silent = { kind: 'probe-failed', reason: 'no answer', failure: 'timeout' } as const;
    t.observe('eu-west-1', silent, 1);
    t.observe('us-east-1', silent, 1);
    assert.equal(t.observe('eu-west-1', silent, 2)?.to, 'down');
  });

  it('always lets one region go down, even in a two-region table', () => {
    const t = new RoutingTable(regions, ctx, { fall: 1, maxEjectedShare: 0.1 }, 0);
    assert.equal(t.observe('eu-west-1', { kind: 'probe-failed', reason: 'ECONNREFUSED' }, 1)?.to, 'down');
    assert.equal(t.observe('us-east-1', { kind: 'probe-failed', reason: 'ECONNREFUSED' }, 1), undefined);
  });
});
