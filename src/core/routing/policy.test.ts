import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type PolicyConfig, type PolicyContext, planRoute, type RegionView } from './policy.js';

const US: RegionView = { id: 'us-east-1', lat: 38.9, lon: -77.4, status: 'up', srttMs: 10 };
const EU: RegionView = { id: 'eu-west-1', lat: 53.3, lon: -6.3, status: 'up', srttMs: 40 };
const AP: RegionView = { id: 'ap-northeast-1', lat: 35.7, lon: 139.7, status: 'up', srttMs: 80 };
const ALL = [US, EU, AP];

function ctx(config: Partial<PolicyConfig>): PolicyContext {
  return { config: { policy: 'latency', weights: {}, priority: [], ...config }, edgeLocation: US };
}
const down = (r: RegionView): RegionView => ({ ...r, status: 'down' });

describe('planRoute', () => {
  it('geo: nearest region to the client first, then by distance', () => {
    const p = planRoute(ctx({ policy: 'geo' }), ALL, { client: { lat: 48.8, lon: 2.3 }, random: 0 });
    assert.deepEqual(p, {
      order: ['eu-west-1', 'us-east-1', 'ap-northeast-1'],
      reason: 'nearest',
      panic: false,
    });
  });

  it('geo: without a client location the edge location stands in', () => {
    const p = planRoute(ctx({ policy: 'geo' }), ALL, { random: 0 });
    assert.equal(p.order[0], 'us-east-1');
  });

  it('geo: the nearest region being down is a failover to the next nearest', () => {
    const p = planRoute(ctx({ policy: 'geo' }), [US, down(EU), AP], {
      client: { lat: 48.8, lon: 2.3 },
      random: 0,
    });
    assert.deepEqual(p.order, ['us-east-1', 'ap-northeast-1']);
    assert.equal(p.reason, 'failover');
  });

  it('latency: lowest smoothed RTT first; unmeasured regions last', () => {
    const p = planRoute(
      ctx({ policy: 'latency' }),
      [{ ...AP, srttMs: undefined }, EU, { ...US, srttMs: 90 }],
      {
        random: 0,
      },
    );
    assert.deepEqual(p.order, ['eu-west-1', 'us-east-1', 'ap-northeast-1']);
    assert.equal(p.reason, 'lowest-latency');
  });

  it('failover: priority order, skipping down regions', () => {
    const c = ctx({ policy: 'failover', priority: ['ap-northeast-1', 'eu-west-1'] });
    assert.deepEqual(planRoute(c, ALL, { random: 0 }), {
      order: ['ap-northeast-1', 'eu-west-1', 'us-east-1'],
      reason: 'priority',
      panic: false,
    });
    const p = planRoute(c, [US, EU, down(AP)], { random: 0 });
    assert.deepEqual(p.order, ['eu-west-1', 'us-east-1']);
    assert.equal(p.reason, 'failover');
  });

  it('weighted: the draw follows the weights and skips down regions', () => {
    const c = ctx({ policy: 'weighted', weights: { 'us-east-1': 3, 'eu-west-1': 1 } });
    assert.equal(planRoute(c, ALL, { random: 0.1 }).order[0], 'us-east-1');
    assert.equal(planRoute(c, ALL, { random: 0.8 }).order[0], 'eu-west-1');
    assert.equal(planRoute(c, [down(US), EU, AP], { random: 0.1 }).order[0], 'eu-west-1');
    assert.equal(planRoute(c, ALL, { random: 0.1 }).reason, 'weighted');
  });

  it('weighted: over many draws each region gets its share', () => {
    const c = ctx({ policy: 'weighted', weights: { 'us-east-1': 3, 'eu-west-1': 1 } });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const r = planRoute(c, ALL, { random: (i + 0.5) / 1000 }).order[0]!;
      counts[r] = (counts[r] ?? 0) + 1;
    }
    assert.deepEqual(counts, { 'us-east-1': 750, 'eu-west-1': 250 });
  });

  it('sticky: reads go to the region of the last write while it is up', () => {
    const c = ctx({ policy: 'geo' });
    const p = planRoute(c, ALL, {
      client: { lat: 48.8, lon: 2.3 },
      stickyRegion: 'ap-northeast-1',
      random: 0,
    });
    assert.deepEqual(p.order, ['ap-northeast-1', 'eu-west-1', 'us-east-1']);
    assert.equal(p.reason, 'sticky');
    const q = planRoute(c, [US, EU, down(AP)], {
      client: { lat: 48.8, lon: 2.3 },
      stickyRegion: 'ap-northeast-1',
      random: 0,
    });
    assert.equal(q.reason, 'nearest');
  });

  it('panic: with every region down, all are tried in policy order', () => {
    const p = planRoute(ctx({ policy: 'geo' }), ALL.map(down), {
      client: { lat: 48.8, lon: 2.3 },
      random: 0,
    });
    assert.equal(p.panic, true);
    assert.equal(p.order.length, 3);
  });

  it('never routes to a down region while one is up (property)', () => {
    const region = fc.record({
      status: fc.constantFrom('up' as const, 'down' as const),
      srttMs: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.tuple(region, region, region),
        fc.constantFrom('latency' as const, 'geo' as const, 'weighted' as const, 'failover' as const),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        fc.option(fc.constantFrom('us-east-1', 'eu-west-1', 'ap-northeast-1'), { nil: undefined }),
        (rs, policy, random, sticky) => {
          const views = ALL.map((r, i) => ({ ...r, ...rs[i]! }));
          const p = planRoute(
            ctx({ policy, priority: ['eu-west-1'], weights: { 'ap-northeast-1': 1 } }),
            views,
            {
              random,
              stickyRegion: sticky,
            },
          );
          const anyUp = views.some((v) => v.status === 'up');
          assert.equal(p.panic, !anyUp);
          if (anyUp) {
            for (const id of p.order) assert.equal(views.find((v) => v.id === id)!.status, 'up');
            assert.equal(p.order.length, views.filter((v) => v.status === 'up').length);
          }
        },
      ),
    );
  });
});
