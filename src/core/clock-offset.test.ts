import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClockOffsets, clockVerdict, nextClockVerdict, type PeerOffset } from './clock-offset.js';

const MAX = 500;
const BASE = 1_700_000_000_000;

/** A reading in flight, in true time: a message `from` -> `to`, or a round trip `to` -> `from` -> `to`. */
interface Exchange {
  kind: 'message' | 'roundTrip';
  /** The node that reads the answer (the message's receiver, the round trip's requester). */
  to: number;
  /** The node whose clock is read. */
  from: number;
  sentAt: number;
  /** Delay to `from` (round trip only) and back to `to`. */
  outMs: number;
  backMs: number;
}

/** Delays from nothing to far beyond any bound: LAN, WAN, a queue stalled for minutes. */
const delayMs = fc.oneof(
  fc.integer({ min: 0, max: 150 }),
  fc.integer({ min: 0, max: 3_000 }),
  fc.nat(600_000),
);

function exchanges(n: number, count: number): fc.Arbitrary<Exchange[]> {
  return fc.array(
    fc
      .record({
        kind: fc.constantFrom<Exchange['kind']>('message', 'roundTrip'),
        to: fc.nat(n - 1),
        hop: fc.integer({ min: 1, max: n - 1 }),
        sentAt: fc.nat(60_000),
        outMs: delayMs,
        backMs: delayMs,
      })
      .map(({ hop, ...e }) => ({ ...e, from: (e.to + hop) % n })),
    { maxLength: count },
  );
}

/**
 * Replays the exchanges on every node, whose clock is true time plus its offset, in the order the
 * answers arrive; `judge` sees each node's estimator after every reading it takes.
 */
function replay(
  clocks: readonly number[],
  list: readonly Exchange[],
  staleAfterMs: number,
  judge: (node: number, c: ClockOffsets) => void,
): ClockOffsets[] {
  const now = clocks.map(() => 0);
  const nodes = clocks.map(
    (_, i) => new ClockOffsets({ nowMs: () => now[i]! }, { maxOffsetMs: MAX, staleAfterMs }),
  );
  const arrivals = list
    .map((e) => ({ e, at: e.sentAt + (e.kind === 'roundTrip' ? e.outMs : 0) + e.backMs }))
    .sort((a, b) => a.at - b.at);
  for (const { e, at } of arrivals) {
    const i = e.to;
    const j = e.from;
    now[i] = BASE + at + clocks[i]!;
    const peer = `r${j}`;
    if (e.kind === 'message') nodes[i]!.observe(peer, BASE + e.sentAt + clocks[j]!);
    else
      nodes[i]!.observeRoundTrip(peer, BASE + e.sentAt + clocks[i]!, BASE + e.sentAt + e.outMs + clocks[j]!);
    judge(i, nodes[i]!);
  }
  return nodes;
}

describe('ClockOffsets: a slow network is never a skewed clock', () => {
  it('for any delays (asymmetric, arbitrarily large), clocks within maxOffsetMs of each other never refuse', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 7 }).chain((n) =>
          fc.record({
            clocks: fc.array(fc.integer({ min: -MAX / 2, max: MAX / 2 }), { minLength: n, maxLength: n }),
            list: exchanges(n, 120),
            staleAfterMs: fc.constantFrom(2_000, 5_000, 1e12),
          }),
        ),
        ({ clocks, list, staleAfterMs }) => {
          replay(clocks, list, staleAfterMs, (i, c) => {
            assert.equal(c.verdict().state, 'ok', `node ${i}`);
            // And what it reports holds the truth.
            for (const o of c.offsets()) {
              const truth = clocks[Number(o.peer.slice(1))]! - clocks[i]!;
              assert.ok(o.lowMs <= truth && truth <= o.highMs, `node ${i}: ${JSON.stringify(o)} vs ${truth}`);
            }
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the lab's repro: readings 528 ms late and no skew at all do not stop a node", () => {
    let now = BASE;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 5000 });
    now = BASE + 528;
    c.observe('eu-west-1', BASE);
    c.observe('us-west-1', BASE);
    assert.equal(c.verdict().state, 'ok');
    // One round trip of 1100 ms each way proves nothing either: [-1100, +1100] holds 0.
    now = BASE + 2200;
    c.observeRoundTrip('eu-west-1', BASE, BASE + 1100);
    c.observeRoundTrip('us-west-1', BASE, BASE + 1100);
    assert.equal(c.verdict().state, 'ok');
  });

  it('a minority of far-off clocks never stops a node whose clock agrees with the rest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 9 }).chain((n) =>
          fc.record({
            good: fc.array(fc.integer({ min: -MAX / 2, max: MAX / 2 }), {
              minLength: n - ((n - 1) >> 1),
              maxLength: n,
            }),
            bad: fc.array(fc.integer({ min: -60_000, max: 60_000 }), { maxLength: (n - 1) >> 1 }),
            list: exchanges(n, 80),
          }),
        ),
        ({ good, bad, list }) => {
          const clocks = [...good, ...bad];
          const n = clocks.length;
          // Every node has heard every other once, whatever else happened.
          const all: Exchange[] = [...list.filter((e) => e.to < n && e.from < n)];
          for (let i = 0; i < n; i++)
            for (let j = 0; j < n; j++)
              if (i !== j)
                all.push({ kind: 'roundTrip', to: i, from: j, sentAt: 70_000, outMs: 40, backMs: 900 });
          const nodes = replay(clocks, all, 1e12, () => undefined);
          for (let i = 0; i < good.length; i++) assert.equal(nodes[i]!.verdict().state, 'ok', `node ${i}`);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('ClockOffsets: a skewed clock is found', () => {
  it('a clock beyond maxOffsetMs + the smallest round trip (+ 1 ms resolution) from every other refuses, naming them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 7 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            others: fc.array(fc.integer({ min: -50, max: 50 }), { minLength: n - 1, maxLength: n - 1 }),
            // The skewed node's own round trips, one or more with each peer.
            trips: fc.array(fc.array(fc.tuple(delayMs, delayMs), { minLength: 1, maxLength: 4 }), {
              minLength: n - 1,
              maxLength: n - 1,
            }),
            noise: exchanges(n, 40),
            ahead: fc.boolean(),
            extraMs: fc.nat(3_600_000),
          }),
        ),
        ({ n, others, trips, noise, ahead, extraMs }) => {
          const minRtt = trips.map((t) => Math.min(...t.map(([a, b]) => a + b)));
          // Beyond maxOffsetMs + the smallest round trip with each peer, from every peer's clock.
          const skewMs = MAX + Math.max(...minRtt) + 2 + 50 + extraMs;
          const clocks = [ahead ? skewMs : -skewMs, ...others];
          const all: Exchange[] = noise.filter((e) => e.to !== 0);
          trips.forEach((t, k) => {
            for (const [outMs, backMs] of t)
              all.push({ kind: 'roundTrip', to: 0, from: k + 1, sentAt: 0, outMs, backMs });
          });
          const v = replay(clocks, all, 1e12, () => undefined)[0]!.verdict();
          assert.equal(v.state, 'beyond');
          if (v.state !== 'beyond') return;
          assert.equal(v.aheadMs > MAX, ahead);
          assert.equal(v.aheadMs < -MAX, !ahead);
          assert.deepEqual(
            v.peers,
            Array.from({ length: n - 1 }, (_, i) => `r${i + 1}`),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a clock behind shows from the peers’ messages alone, ahead only from a round trip', () => {
    let now = BASE;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 5000 });
    // We are 3 s behind: their messages, 40 ms late, read 2960 ms ahead of us.
    now = BASE + 40;
    c.observe('a', BASE + 3000);
    c.observe('b', BASE + 3000);
    assert.deepEqual(c.verdict(), { state: 'beyond', aheadMs: -2959, peers: ['a', 'b'] });

    // We are 3 s ahead: their messages alone say only "at least 3040 ms behind us", no proof.
    const d = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 5000 });
    now = BASE + 3040;
    d.observe('a', BASE);
    d.observe('b', BASE);
    assert.equal(d.verdict().state, 'ok');
    // Asked at our 3000, answered with their 20, back at our 3040: they are 2980 to 3020 ms behind.
    d.observeRoundTrip('a', BASE + 3000, BASE + 20);
    d.observeRoundTrip('b', BASE + 3000, BASE + 20);
    assert.deepEqual(d.verdict(), { state: 'beyond', aheadMs: 2979, peers: ['a', 'b'] });
  });
});

describe('ClockOffsets: readings over time', () => {
  it('intersects the readings (as tight as the fastest) and forgets peers gone silent', () => {
    let now = 1_000_000;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    // The peer's clock is 2000 ms ahead; messages arrive 80, 30 and 200 ms after they were written.
    for (const d of [80, 30, 200]) {
      c.observe('eu', now - d + 2000);
      now += 100;
    }
    // A round trip of 60 + 70 ms.
    c.observeRoundTrip('eu', now - 130, now - 70 + 2000);
    assert.deepEqual(c.offsets(), [{ peer: 'eu', lowMs: 1969, highMs: 2061, offsetMs: 2015 }]);
    now += 3001;
    assert.deepEqual(c.offsets(), []);
    assert.equal(c.verdict().state, 'ok');
  });

  it('a peer whose clock was stepped: the newer reading wins over older ones it contradicts', () => {
    let now = BASE;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 5000 });
    c.observeRoundTrip('a', now - 10, now);
    now += 100;
    // a's clock jumped 3 s ahead.
    c.observeRoundTrip('a', now - 10, now + 3000);
    assert.deepEqual(c.offsets(), [{ peer: 'a', lowMs: 2999, highMs: 3011, offsetMs: 3005 }]);
  });

  it('a clock set back (skew removed) stops trusting readings taken in its own future', () => {
    let skewMs = 3000;
    const real = { t: 5_000_000 };
    const c = new ClockOffsets({ nowMs: () => real.t + skewMs }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    c.observeRoundTrip('a', real.t + skewMs - 5, real.t);
    c.observeRoundTrip('b', real.t + skewMs - 5, real.t);
    assert.equal(c.verdict().state, 'beyond');
    skewMs = 0;
    assert.equal(c.verdict().state, 'ok');
    c.observeRoundTrip('a', real.t - 5, real.t);
    c.observeRoundTrip('b', real.t - 5, real.t);
    assert.equal(c.verdict().state, 'ok');
    assert.equal(c.offsets().length, 2);
  });

  it('ignores readings that are not finite, and round trips our clock went back during', () => {
    const c = new ClockOffsets({ nowMs: () => 1000 }, { maxOffsetMs: MAX, staleAfterMs: 3000 });
    c.observe('a', Number.NaN);
    c.observe('a', Number.POSITIVE_INFINITY);
    c.observeRoundTrip('a', Number.NaN, 5);
    c.observeRoundTrip('a', 2000, 5);
    assert.deepEqual(c.offsets(), []);
  });

  it('keeps a bounded number of slices per peer however many readings arrive', () => {
    let now = BASE;
    const c = new ClockOffsets({ nowMs: () => now }, { maxOffsetMs: MAX, staleAfterMs: 1000 });
    for (let k = 0; k < 100_000; k++) {
      now += 1;
      c.observe('a', now - (k % 97));
    }
    const slices = (c as unknown as { slices: Map<string, unknown[]> }).slices.get('a')!;
    assert.ok(slices.length <= 9, `${slices.length}`);
    assert.deepEqual(c.offsets(), [{ peer: 'a', lowMs: -1, highMs: Number.POSITIVE_INFINITY, offsetMs: -1 }]);
  });
});

const known = (peer: string, lowMs: number, highMs: number): PeerOffset => ({
  peer,
  lowMs,
  highMs,
  offsetMs: (lowMs + highMs) / 2,
});

describe('clockVerdict', () => {
  it('does not depend on the order the peers are listed in', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc
            .record({
              peer: fc.string({ minLength: 1, maxLength: 4 }),
              lowMs: fc.integer(),
              widthMs: fc.nat(),
            })
            .map((o) => known(o.peer, o.lowMs, o.lowMs + o.widthMs)),
          { maxLength: 9, selector: (o: PeerOffset) => o.peer },
        ),
        (offsets) => {
          assert.deepEqual(clockVerdict([...offsets].reverse(), MAX), clockVerdict(offsets, MAX));
        },
      ),
    );
  });

  it('in two regions nobody can tell which clock is wrong: neither stops', () => {
    assert.equal(clockVerdict([known('b', 10_000, 10_010)], MAX).state, 'ok');
    assert.equal(clockVerdict([], MAX).state, 'ok');
  });

  it('an interval that reaches within bounds is no evidence, however far its middle', () => {
    const wide = [known('a', -5000, -400), known('b', 400, 5000)];
    assert.equal(clockVerdict(wide, MAX).state, 'ok');
  });
});

describe('nextClockVerdict', () => {
  const beyond = clockVerdict([known('a', -3010, -2990), known('b', -3010, -2990)], MAX);

  it('keeps refusing while peers are silent: silence is no evidence the clock is back', () => {
    assert.equal(beyond.state, 'beyond');
    assert.deepEqual(nextClockVerdict(beyond, [], MAX, 3), beyond);
    assert.deepEqual(nextClockVerdict(beyond, [known('a', -3010, -2990)], MAX, 3), beyond);
  });

  it('leaves once peers not proving it beyond form a majority with us, and never enters without one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 9 }),
        fc.array(fc.tuple(fc.integer({ min: -MAX, max: MAX }), fc.nat(100_000), fc.nat(100_000)), {
          maxLength: 8,
        }),
        (n, near) => {
          // Each interval holds some offset within bounds, however wide it is.
          const offsets = near
            .slice(0, n - 1)
            .map(([at, below, above], i) => known(`p${i}`, at - below, at + above));
          const next = nextClockVerdict(beyond, offsets, MAX, n);
          assert.equal(next.state === 'ok', 2 * (offsets.length + 1) > n);
          assert.equal(nextClockVerdict({ state: 'ok' }, offsets, MAX, n).state, 'ok');
        },
      ),
    );
  });
});
