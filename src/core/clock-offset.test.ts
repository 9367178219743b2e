import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClockOffsets, clockVerdict, nextClockVerdict, type PeerOffset } from './clock-offset.js';

const MAX = 500;

/** Every node's view of every other: true clock offsets, readings late by a one-way delay. */
function views(
  offsetsMs: readonly number[],
  delayMs: (from: number, to: number) => number,
): { verdict: ReturnType<typeof clockVerdict>; offsets: PeerOffset[] }[] {
  const base = 1_700_000_000_000;
  return offsetsMs.map((mine, i) => {
    let now = base + mine;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    offsetsMs.forEach((theirs, j) => {
      if (j === i) return;
      const d = delayMs(j, i);
      // Sent at true time `base`, read by the peer's clock; arrives d ms later by ours.
      now = base + d + mine;
      c.observe(`r${j}`, base + theirs);
    });
    // Judged once every reading has arrived.
    now = base + mine + 200;
    return { verdict: c.verdict(), offsets: c.offsets() };
  });
}

describe('clockVerdict', () => {
  it('a minority of far-off clocks never stops a node whose clock agrees with the rest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 9 }).chain((n) =>
          fc.record({
            good: fc.array(fc.integer({ min: -MAX / 2, max: MAX / 2 }), { minLength: n, maxLength: n }),
            bad: fc.array(fc.integer({ min: -60_000, max: 60_000 }), {
              minLength: 0,
              maxLength: (n - 1) >> 1,
            }),
            delays: fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 100, maxLength: 100 }),
          }),
        ),
        ({ good, bad, delays }) => {
          // The good ones are pairwise within MAX; readings are late by up to 120 ms, which can
          // only make a peer look further behind, so keep the good ones' spread within MAX - 120.
          const goodClocks = good.map((g) => Math.round((g * (MAX - 120)) / MAX));
          const clocks = [...goodClocks, ...bad.map((b, i) => b + (i + 1) * 7)];
          const v = views(clocks, (a, b) => delays[(a * 10 + b) % delays.length]!);
          for (let i = 0; i < goodClocks.length; i++) assert.equal(v[i]!.verdict.state, 'ok', `node ${i}`);
        },
      ),
    );
  });

  it('a clock beyond maxOffsetMs from every other stops, and names them for replay', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 9 }),
        fc.integer({ min: MAX + 121, max: 3_600_000 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 120 }),
        (n, skewMs, ahead, delayMs) => {
          const clocks = Array.from({ length: n }, (_, i) => (i === 0 ? (ahead ? skewMs : -skewMs) : 0));
          const v = views(clocks, () => delayMs)[0]!.verdict;
          assert.equal(v.state, 'beyond');
          if (v.state !== 'beyond') return;
          assert.equal(v.aheadMs > 0, ahead);
          assert.deepEqual(
            v.peers,
            Array.from({ length: n - 1 }, (_, i) => `r${i + 1}`),
          );
        },
      ),
    );
  });

  it('does not depend on the order the peers are listed in', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({ peer: fc.string({ minLength: 1, maxLength: 4 }), offsetMs: fc.integer() }),
          {
            maxLength: 9,
            selector: (o: PeerOffset) => o.peer,
          },
        ),
        (offsets) => {
          assert.deepEqual(clockVerdict([...offsets].reverse(), MAX), clockVerdict(offsets, MAX));
        },
      ),
    );
  });

  it('in two regions nobody can tell which clock is wrong: neither stops', () => {
    assert.equal(clockVerdict([{ peer: 'b', offsetMs: 10_000 }], MAX).state, 'ok');
    assert.equal(clockVerdict([], MAX).state, 'ok');
  });
});

describe('nextClockVerdict', () => {
  const beyond = clockVerdict(
    [
      { peer: 'a', offsetMs: -3000 },
      { peer: 'b', offsetMs: -3000 },
    ],
    MAX,
  );

  it('keeps refusing while peers are silent: silence is no evidence the clock is back', () => {
    assert.equal(beyond.state, 'beyond');
    assert.deepEqual(nextClockVerdict(beyond, [], MAX, 3), beyond);
    assert.deepEqual(nextClockVerdict(beyond, [{ peer: 'a', offsetMs: -3000 }], MAX, 3), beyond);
  });

  it('leaves once peers within bounds form a majority with us, and never enters without one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 9 }),
        fc.array(fc.integer({ min: -MAX, max: MAX }), { maxLength: 8 }),
        (n, near) => {
          const offsets = near.slice(0, n - 1).map((offsetMs, i) => ({ peer: `p${i}`, offsetMs }));
          const next = nextClockVerdict(beyond, offsets, MAX, n);
          assert.equal(next.state === 'ok', 2 * (offsets.length + 1) > n);
          assert.equal(nextClockVerdict({ state: 'ok' }, offsets, MAX, n).state, 'ok');
        },
      ),
    );
  });
});

describe('ClockOffsets', () => {
  it('estimates with the reading that waited least, and forgets peers gone silent', () => {
    let now = 1_000_000;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    // The peer's clock is 2000 ms ahead; readings arrive 80, 30 and 200 ms after they were taken.
    for (const d of [80, 30, 200]) {
      c.observe('eu', now - d + 2000);
      now += 100;
    }
    assert.deepEqual(c.offsets(), [{ peer: 'eu', offsetMs: 1970 }]);
    now += 3001;
    assert.deepEqual(c.offsets(), []);
    assert.equal(c.verdict().state, 'ok');
  });

  it('a clock set back (skew removed) stops trusting readings taken in its own future', () => {
    let skewMs = 3000;
    const real = { t: 5_000_000 };
    const c = new ClockOffsets({ nowMs: () => real.t + skewMs }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    c.observe('a', real.t);
    c.observe('b', real.t);
    assert.equal(c.verdict().state, 'beyond');
    skewMs = 0;
    assert.equal(c.verdict().state, 'ok');
    c.observe('a', real.t);
    c.observe('b', real.t);
    assert.equal(c.verdict().state, 'ok');
  });

  it('ignores readings that are not finite numbers', () => {
    const c = new ClockOffsets({ nowMs: () => 0 }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    c.observe('a', Number.NaN);
    c.observe('a', Number.POSITIVE_INFINITY);
    assert.deepEqual(c.offsets(), []);
  });
});
