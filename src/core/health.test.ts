import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HealthState } from './health.js';

describe('HealthState', () => {
  it('goes down after `fall` failed probes and up after `rise` good ones', () => {
    const h = new HealthState({ fall: 3, rise: 2 });
    assert.equal(h.observe({ kind: 'probe-failed', reason: 'timeout' }, 1), undefined);
    assert.equal(h.observe({ kind: 'probe-failed', reason: 'timeout' }, 2), undefined);
    assert.equal(h.observe({ kind: 'probe-failed', reason: 'timeout' }, 3)?.to, 'down');
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 5 }, 4), undefined);
    assert.equal(h.observe({ kind: 'probe-ok', rttMs: 5 }, 5)?.to, 'up');
    assert.equal(h.status, 'up');
  });

  it('a good probe between failures resets the count', () => {
    const h = new HealthState({ fall: 2 });
    h.observe({ kind: 'probe-failed', reason: 'x' }, 1);
    h.observe({ kind: 'probe-ok', rttMs: 1 }, 2);
    assert.equal(h.observe({ kind: 'probe-failed', reason: 'x' }, 3), undefined);
    assert.equal(h.status, 'up');
  });

  it('ejects passively on a failed request, without waiting for probes', () => {
    const h = new HealthState({ fall: 3, passiveFall: 1 });
    assert.equal(h.observe({ kind: 'request-failed', reason: 'ECONNREFUSED' }, 10)?.to, 'down');
  });

  it('smooths the RTT', () => {
    const h = new HealthState({ rttAlpha: 0.5 });
    h.observe({ kind: 'probe-ok', rttMs: 10 }, 1);
    h.observe({ kind: 'probe-ok', rttMs: 20 }, 2);
    assert.equal(h.srttMs, 15);
  });
});
