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
    const tr = t.observe('eu-west-1', { kind: 'request-failed', reason: 'ECONNRESET' }, 2);
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
