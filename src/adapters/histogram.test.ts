import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { bucketDelta, bucketQuantile, histogramBuckets } from './histogram.js';
import { LAG_BUCKETS_MS } from './metrics.js';

/** A real prom-client histogram with the lag buckets, as a node exposes it. */
function histogram() {
  const registry = new Registry();
  registry.setDefaultLabels({ region: 'us-east-1' });
  const h = new Histogram({
    name: 'lag_ms',
    help: 'test',
    labelNames: ['origin'],
    buckets: LAG_BUCKETS_MS,
    registers: [registry],
  });
  return { h, scrape: () => registry.metrics() };
}

function exactQuantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** The bounds of the bucket that holds `v`. */
function bucketOf(v: number): [number, number] {
  let lo = 0;
  for (const le of LAG_BUCKETS_MS) {
    if (v <= le) return [lo, le];
    lo = le;
  }
  return [lo, Number.POSITIVE_INFINITY];
}

describe('histogram quantiles from scraped buckets', () => {
  it('lands in the bucket of the exact quantile, per label, for any sample', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.double({ min: 0, max: 5000, noNaN: true }), { minLength: 1, maxLength: 400 }),
        fc.constantFrom(0.5, 0.9, 0.99, 1),
        async (values, q) => {
          const { h, scrape } = histogram();
          for (const v of values) h.observe({ origin: 'eu-west-1' }, v);
          h.observe({ origin: 'ap-northeast-1' }, 9999);
          const b = histogramBuckets(await scrape(), 'lag_ms', 'origin');
          const est = bucketQuantile(b.get('eu-west-1')!, q);
          const [lo, hi] = bucketOf(exactQuantile(values, q));
          assert.ok(est >= lo - 1e-9 && est <= hi + 1e-9, `estimate ${est} outside [${lo}, ${hi}]`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the difference of two scrapes holds only what was observed between them', async () => {
    const { h, scrape } = histogram();
    for (let i = 0; i < 1000; i++) h.observe({ origin: 'eu-west-1' }, 900); // a start-up burst
    const before = histogramBuckets(await scrape(), 'lag_ms', 'origin');
    for (let i = 0; i < 1000; i++) h.observe({ origin: 'eu-west-1' }, 40 + (i % 10));
    const after = histogramBuckets(await scrape(), 'lag_ms', 'origin');
    const window = bucketDelta(after.get('eu-west-1'), before.get('eu-west-1'));
    assert.equal(window.at(-1)![1], 1000);
    const p99 = bucketQuantile(window, 0.99);
    assert.ok(p99 >= 48 && p99 <= 50, `p99 of the window ${p99}`);
    // Without the difference, the burst dominates the tail.
    assert.ok(bucketQuantile(after.get('eu-west-1')!, 0.99) > 800);
  });

  it('answers NaN for an empty window and the top finite bound for a rank in +Inf', () => {
    assert.ok(Number.isNaN(bucketQuantile([], 0.5)));
    assert.ok(
      Number.isNaN(
        bucketQuantile(
          [
            [1, 0],
            [Number.POSITIVE_INFINITY, 0],
          ],
          0.5,
        ),
      ),
    );
    assert.equal(
      bucketQuantile(
        [
          [10, 1],
          [Number.POSITIVE_INFINITY, 4],
        ],
        0.9,
      ),
      10,
    );
  });
});
