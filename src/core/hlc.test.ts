import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MeridianError } from './errors.js';
import { compareHlc, decodeHlc, encodeHlc, type Hlc, HybridClock } from './hlc.js';

const hlcArb = fc.record({
  wallMs: fc.integer({ min: 0, max: 2 ** 44 }),
  logical: fc.integer({ min: 0, max: 16 ** 6 - 1 }),
});

/** A step of physical time (may go backwards) followed by a local event or a receive. */
const stepArb = fc.record({
  jumpMs: fc.integer({ min: -5000, max: 5000 }),
  receive: fc.option(fc.record({ aheadMs: fc.integer({ min: -5000, max: 2000 }), logical: fc.nat(1000) })),
});

describe('HybridClock', () => {
  it('is strictly monotonic under arbitrary physical time, including steps backwards and receives', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 200 }), (steps) => {
        let physical = 1_700_000_000_000;
        const clock = new HybridClock({ nowMs: () => physical }, { maxOffsetMs: 500 });
        let last: Hlc = clock.now();
        for (const s of steps) {
          physical += s.jumpMs;
          let next: Hlc;
          if (s.receive) {
            try {
              next = clock.receive({ wallMs: physical + s.receive.aheadMs, logical: s.receive.logical });
              assert.ok(
                compareHlc(next, { wallMs: physical + s.receive.aheadMs, logical: s.receive.logical }) > 0,
              );
            } catch (e) {
              assert.ok(e instanceof MeridianError && e.code === 'clock_skew');
              assert.ok(s.receive.aheadMs > 500, 'only timestamps beyond maxOffsetMs are refused');
              assert.deepEqual(clock.peek(), last, 'a refused timestamp leaves the clock unchanged');
              continue;
            }
          } else next = clock.now();
          assert.ok(compareHlc(next, last) > 0, `${encodeHlc(next)} must follow ${encodeHlc(last)}`);
          assert.ok(next.wallMs >= Math.min(physical, next.wallMs), 'never behind physical time');
          last = next;
        }
      }),
    );
  });

  it('counts refused remote timestamps', () => {
    const clock = new HybridClock({ nowMs: () => 1000 }, { maxOffsetMs: 100 });
    assert.throws(() => clock.receive({ wallMs: 1101, logical: 0 }), { code: 'clock_skew' });
    clock.receive({ wallMs: 1100, logical: 0 });
    assert.equal(clock.rejectedCount, 1);
  });

  it('restore() raises the floor so a restarted clock never repeats a timestamp', () => {
    const clock = new HybridClock({ nowMs: () => 10 });
    clock.restore({ wallMs: 50, logical: 3 });
    assert.deepEqual(clock.now(), { wallMs: 50, logical: 4 });
  });
});

describe('HLC encoding', () => {
  it('round-trips and sorts as strings in time order', () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, (a, b) => {
        assert.deepEqual(decodeHlc(encodeHlc(a)), { ...a });
        const byString = encodeHlc(a) < encodeHlc(b) ? -1 : encodeHlc(a) > encodeHlc(b) ? 1 : 0;
        assert.equal(byString, Math.sign(compareHlc(a, b)));
      }),
    );
  });

  it('refuses malformed timestamps with a typed error', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          decodeHlc(s);
        } catch (e) {
          assert.ok(e instanceof MeridianError);
        }
      }),
    );
  });
});
