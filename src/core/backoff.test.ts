import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Backoff, backoffCeilingMs, backoffMs } from './backoff.js';

const fixed = (x: number) => ({ next: () => x });

describe('backoff', () => {
  it('doubles the ceiling from base to max', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((a) => backoffCeilingMs(p, a)),
      [100, 200, 400, 800, 1000, 1000],
    );
    assert.equal(backoffCeilingMs(p, 0), 100, 'an attempt below 1 counts as the first');
    assert.equal(backoffCeilingMs(p, 10_000), 1000, 'huge attempt numbers stay finite');
  });

  it('draws the whole range below the ceiling (full jitter)', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffMs(p, 3, fixed(0)), 0);
    assert.equal(backoffMs(p, 3, fixed(0.5)), 200);
    assert.equal(backoffMs(p, 3, fixed(0.999_999)), 399);
  });

  it('any delay is a whole number of ms in [0, min(max, base * 2^(n-1)))', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 600_000 }),
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (baseMs, extra, attempt, u) => {
          const p = { baseMs, maxMs: baseMs + extra };
          const d = backoffMs(p, attempt, fixed(u));
          assert.ok(Number.isInteger(d) && d >= 0 && d < backoffCeilingMs(p, attempt));
          assert.ok(backoffCeilingMs(p, attempt) <= p.maxMs);
          assert.ok(backoffCeilingMs(p, attempt + 1) >= backoffCeilingMs(p, attempt));
        },
      ),
    );
  });

  it('Backoff counts attempts and starts over on reset', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000 }, fixed(0.999_999));
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [99, 199, 399, 799, 999]);
    assert.equal(b.attempt, 5);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 99);
  });
});
