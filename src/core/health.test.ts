import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { classifyFailure, DEFAULT_HEALTH, type HealthEvent, HealthState } from './health.js';

const timeout = (lateMs = 0): HealthEvent => ({
  kind: 'probe-failed',
  reason: 'no answer',
  failure: 'timeout',
  lateMs,
});
const refused: HealthEvent = { kind: 'probe-failed', reason: 'ECONNREFUSED', failure: 'refused' };

describe('HealthState', () => {
  it('goes down after `fall` failed probes and up after `rise` good ones', () => {
    const h = new HealthState({ fall: 3, rise: 2 });
    assert.equal(h.observe(timeout(), 1), undefined);
    assert.equal(h.observe(timeout(), 2), undefined);
    assert.equal(h.observe(timeout(), 3)?.to, 'down');
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 5 }, 4), undefined);
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 5 }, 5)?.to, 'up');
    assert.equal(h.status, 'up');
  });

  it('a good probe between failures resets the count', () => {
    const h = new HealthState({ fall: 2 });
    h.observe(timeout(), 1);
    h.observe({ kind: 'probe-ok', rttMs: 1 }, 2);
    assert.equal(h.observe(timeout(), 3), undefined);
    assert.equal(h.status, 'up');
  });

  it('ejects on one refused request (nothing listens), on a reset only with company', () => {
    const h = new HealthState({ fall: 3, passiveFall: 2 });
    assert.equal(h.observe({ kind: 'request-failed', reason: 'ECONNREFUSED' }, 10)?.to, 'down');
    const r = new HealthState({ passiveFall: 2 });
    assert.equal(r.observe({ kind: 'request-failed', reason: 'ECONNRESET' }, 10), undefined);
    assert.equal(r.observe({ kind: 'request-failed', reason: 'ECONNRESET' }, 11)?.to, 'down');
  });

  it('never ejects on slow or failing answers of live traffic', () => {
    const h = new HealthState({ passiveFall: 1 });
    for (let i = 0; i < 50; i++) {
      assert.equal(h.observe({ kind: 'request-failed', reason: 'UND_ERR_HEADERS_TIMEOUT' }, i), undefined);
      assert.equal(h.observe({ kind: 'request-failed', reason: 'answered 502' }, i), undefined);
    }
  });

  it('smooths the RTT as RFC 6298 does and derives the probe deadline from it', () => {
    const h = new HealthState({ granularityMs: 10, minTimeoutMs: 1, maxTimeoutMs: 10_000 });
    h.observe({ kind: 'probe-ok', rttMs: 100 }, 1);
    assert.equal(h.srttMs, 100);
    assert.equal(h.rttvarMs, 50);
    assert.equal(h.probeTimeoutMs(), 300);
    h.observe({ kind: 'probe-ok', rttMs: 200 }, 2);
    assert.equal(h.srttMs, 112.5);
    assert.equal(h.rttvarMs, 62.5);
    assert.equal(h.probeTimeoutMs(), 363);
  });

  it('an answer that paid for a new connection proves life; it is an RTT sample only for a path not yet measured', () => {
    const h = new HealthState({ granularityMs: 10, minTimeoutMs: 1, maxTimeoutMs: 10_000, fall: 1 });
    h.observe({ kind: 'probe-ok', rttMs: 100, fresh: true }, 1);
    assert.equal(h.srttMs, 100, 'the first sample, even fresh');
    h.observe({ kind: 'probe-failed', reason: 'no answer', failure: 'timeout' }, 2);
    assert.equal(h.status, 'down');
    h.observe({ kind: 'probe-ok', rttMs: 900, fresh: true }, 3);
    h.observe({ kind: 'probe-ok', rttMs: 900, fresh: true }, 4);
    assert.equal(h.status, 'up');
    assert.equal(h.srttMs, 100);
    assert.equal(h.probeTimeoutMs(), 300);
  });

  it('uses the configured RTT, else the configured timeout, until the path is measured', () => {
    assert.equal(new HealthState({ timeoutMs: 700 }).probeTimeoutMs(), 700);
    // 330 + max(G, 4 * 165)
    assert.equal(new HealthState({ initialRttMs: 330, maxTimeoutMs: 5000 }).probeTimeoutMs(), 990);
  });

  it('ignores a timeout whose own timer fired late: the prober was stalled, not the target', () => {
    const h = new HealthState({ fall: 2, stallMs: 50 });
    for (let i = 0; i < 10; i++) assert.equal(h.observe(timeout(400), i), undefined);
    assert.equal(h.stalled, 10);
    assert.equal(h.status, 'up');
  });

  it('an answer after a reported timeout proves life', () => {
    const h = new HealthState({ fall: 2 });
    h.observe(timeout(), 1);
    h.observe({ kind: 'probe-ok', rttMs: 900 }, 2);
    assert.equal(h.observe(timeout(), 3), undefined);
    assert.ok((h.srttMs ?? 0) >= 900);
  });

  it('a target that flaps needs twice the good probes to come back', () => {
    const h = new HealthState({ fall: 1, rise: 2, flapWindowMs: 10_000 });
    h.observe(refused, 0);
    h.observe({ kind: 'probe-ok', rttMs: 1 }, 1);
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 1 }, 2)?.to, 'up');
    assert.equal(h.observe(refused, 3)?.to, 'down');
    assert.equal(h.riseNeeded(), 4);
    for (let t = 4; t < 7; t++) assert.equal(h.observe({ kind: 'probe-ok', rttMs: 1 }, t), undefined);
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 1 }, 7)?.to, 'up');
  });

  it('keeps a target up when the ejection is refused, and asks again on the next failure', () => {
    const h = new HealthState({ fall: 2 });
    h.observe(refused, 1);
    assert.equal(
      h.observe(refused, 2, () => false),
      undefined,
    );
    assert.ok(h.held);
    assert.equal(h.observe(refused, 3)?.to, 'down');
  });

  it('classifies failures from their codes', () => {
    assert.equal(classifyFailure('ECONNREFUSED'), 'refused');
    assert.equal(classifyFailure('UND_ERR_SOCKET other side closed'), 'reset');
    assert.equal(classifyFailure('no answer in 400 ms'), 'timeout');
    assert.equal(classifyFailure('answered 503'), 'unhealthy');
  });
});

const options = fc.record({
  fall: fc.integer({ min: 2, max: 5 }),
  granularityMs: fc.integer({ min: 0, max: 500 }),
  minTimeoutMs: fc.integer({ min: 1, max: 500 }),
  maxTimeoutMs: fc.integer({ min: 500, max: 5000 }),
});

describe('HealthState laws', () => {
  it('the probe deadline stays within its floor and ceiling, whatever the samples', () => {
    fc.assert(
      fc.property(
        options,
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { maxLength: 50 }),
        (o, rtts) => {
          const h = new HealthState(o);
          for (const [i, r] of rtts.entries()) {
            h.observe({ kind: 'probe-ok', rttMs: r }, i);
            const d = h.probeTimeoutMs();
            if (d < o.minTimeoutMs || d > o.maxTimeoutMs) return false;
          }
          return true;
        },
      ),
    );
  });

  it('on a path whose RTT varies by at most G, no answer ever misses its deadline', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1500 }),
        fc.integer({ min: 0, max: 300 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 60 }),
        (baseMs, granularityMs, jitters) => {
          const h = new HealthState({ granularityMs, minTimeoutMs: 1, maxTimeoutMs: 100_000 });
          let t = 0;
          for (const j of jitters) {
            const rtt = baseMs + j * granularityMs;
            // The first probe has no sample yet: the configured timeout rules it.
            if (h.srttMs !== undefined && rtt > h.probeTimeoutMs()) return false;
            h.observe({ kind: 'probe-ok', rttMs: rtt }, t++);
          }
          return true;
        },
      ),
    );
  });

  it('fewer than `fall` failures in a row never eject, whatever else happens', () => {
    const event = fc.oneof(
      fc.constant<HealthEvent>({ kind: 'probe-ok', rttMs: 10 }),
      fc.constant<HealthEvent>(timeout()),
      fc.constant<HealthEvent>(refused),
      fc.constant<HealthEvent>(timeout(1000)),
      fc.constant<HealthEvent>({ kind: 'request-failed', reason: 'answered 500' }),
      fc.constant<HealthEvent>({ kind: 'request-ok' }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 4 }), fc.array(event, { maxLength: 80 }), (fall, events) => {
        const h = new HealthState({ fall });
        let run = 0;
        for (const [i, e] of events.entries()) {
          const stalled = e.kind === 'probe-failed' && (e.lateMs ?? 0) > DEFAULT_HEALTH.stallMs;
          if (e.kind === 'probe-ok') run = 0;
          else if (e.kind === 'probe-failed' && !stalled) run++;
          const t = h.observe(e, i);
          if (t?.to === 'down' && run < fall) return false;
        }
        return true;
      }),
    );
  });

  it('a dead target (every probe refused or silent) is down after exactly `fall` probes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        (fall, kinds) => {
          const h = new HealthState({ fall });
          for (let i = 0; i < fall; i++) {
            const t = h.observe(kinds[i] ? refused : timeout(), i);
            if ((t?.to === 'down') !== (i === fall - 1)) return false;
          }
          return h.status === 'down';
        },
      ),
    );
  });
});
