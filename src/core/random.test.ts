import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hash32, Prng } from './random.js';

describe('Prng', () => {
  it('gives the same numbers for a seed as every earlier release (printed seeds keep replaying)', () => {
    const p = new Prng(42);
    assert.deepEqual([p.u32(), p.u32(), p.u32()], [1028872839, 2516511472, 400437680]);
    assert.equal(new Prng(42).fork('network').u32(), 273331223);
  });

  it('same seed, same stream; forks by label are independent of each other and of the parent', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const a = new Prng(seed);
        const b = new Prng(seed);
        const xs = Array.from({ length: 8 }, () => a.u32());
        assert.deepEqual(
          xs,
          Array.from({ length: 8 }, () => b.u32()),
        );
        const x = new Prng(seed).fork('x');
        const y = new Prng(seed).fork('y');
        assert.notDeepEqual(
          Array.from({ length: 4 }, () => x.u32()),
          Array.from({ length: 4 }, () => y.u32()),
        );
        // Drawing from the parent does not shift a fork's stream.
        const drawn = new Prng(seed);
        drawn.next();
        assert.equal(drawn.fork('x').u32(), new Prng(seed).fork('x').u32());
      }),
    );
  });

  it("stays within each helper's range", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        (seed, lo, width) => {
          const p = new Prng(seed);
          const u = p.next();
          assert.ok(u >= 0 && u < 1);
          const n = p.int(lo, lo + width);
          assert.ok(Number.isInteger(n) && n >= lo && n <= lo + width);
          const r = p.range(lo, lo + width + 1);
          assert.ok(r >= lo && r < lo + width + 1);
          assert.ok(p.exp(10) >= 0);
          assert.equal(p.chance(0), false);
          assert.equal(p.chance(1), true);
        },
      ),
    );
  });

  it('is roughly uniform (each tenth of [0, 1) gets 10% of 100,000 draws, within 0.5%)', () => {
    const p = new Prng(7);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) bins[Math.floor(p.next() * 10)]!++;
    for (const b of bins) assert.ok(Math.abs(b - 10_000) < 500, `bin of ${b}`);
  });

  it('hash32 is FNV-1a', () => {
    assert.equal(hash32(''), 0x811c9dc5);
    assert.equal(hash32('a'), 0xe40c292c);
  });
});
