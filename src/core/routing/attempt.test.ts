import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestAttempt } from './attempt.js';
import type { RoutePlan } from './policy.js';

const plan: RoutePlan = { order: ['a', 'b', 'c'], reason: 'nearest', panic: false };
const allUp = () => true;
const err = { kind: 'error', reason: 'ECONNREFUSED' } as const;
const answer = (status: number, replayHeader?: string) => ({ kind: 'answer', status, replayHeader }) as const;

describe('RequestAttempt', () => {
  it('delivers a good answer from the first region', () => {
    const a = new RequestAttempt(plan, true);
    assert.deepEqual(a.first(), { kind: 'send', region: 'a', reason: 'nearest' });
    assert.deepEqual(a.next(answer(200), allUp), { kind: 'deliver' });
    assert.deepEqual(a.next(answer(404), allUp), { kind: 'deliver' });
  });

  it('retries an idempotent request once in the next healthy region', () => {
    const a = new RequestAttempt(plan, true);
    a.first();
    assert.deepEqual(
      a.next(err, (r) => r === 'c'),
      { kind: 'send', region: 'c', reason: 'retry' },
    );
    assert.equal(a.next(err, allUp).kind, 'fail');
  });

  it('retries on a 5xx but delivers it when the retry also fails', () => {
    const a = new RequestAttempt(plan, true);
    a.first();
    assert.deepEqual(a.next(answer(500), allUp), { kind: 'send', region: 'b', reason: 'retry' });
    assert.deepEqual(a.next(answer(502), allUp), { kind: 'deliver' });
  });

  it('never retries a POST without an idempotency key', () => {
    const a = new RequestAttempt(plan, false);
    a.first();
    assert.equal(a.next(err, allUp).kind, 'fail');
    const b = new RequestAttempt(plan, false);
    b.first();
    assert.deepEqual(b.next(answer(503), allUp), { kind: 'deliver' });
  });

  it('replays once on 421 and 503 naming a region, even a POST', () => {
    const a = new RequestAttempt(plan, false);
    a.first();
    assert.deepEqual(a.next(answer(421, 'region=c'), allUp), { kind: 'send', region: 'c', reason: 'replay' });
    assert.deepEqual(a.next(answer(421, 'region=b'), allUp), { kind: 'deliver' });
    const b = new RequestAttempt(plan, true);
    b.first();
    assert.deepEqual(b.next(answer(503, 'region=b'), allUp), { kind: 'send', region: 'b', reason: 'replay' });
  });

  it('does not replay to an unknown region', () => {
    const a = new RequestAttempt(plan, true, (r) => r !== 'zz');
    a.first();
    assert.deepEqual(a.next(answer(421, 'region=zz'), allUp), { kind: 'deliver' });
  });

  // Issue 18: an edge that held the home region down (a false ejection) answered the node's 421
  // itself; the owner of the data is the only region that can answer, so it is asked anyway.
  it('replays a 421 or 503 to the named region even when this edge holds it down', () => {
    const onlyAUp = (r: string) => r === 'a';
    const a = new RequestAttempt(plan, false);
    a.first();
    assert.deepEqual(a.next(answer(421, 'region=b'), onlyAUp), {
      kind: 'send',
      region: 'b',
      reason: 'replay',
    });
    const b = new RequestAttempt(plan, true);
    b.first();
    assert.deepEqual(b.next(answer(503, 'region=c'), onlyAUp), {
      kind: 'send',
      region: 'c',
      reason: 'replay',
    });
    // ...and if the held-down region really is gone, the request fails there, not in a loop.
    assert.equal(b.next(err, onlyAUp).kind, 'fail');
  });

  it('a retry may still be replayed to the home region', () => {
    const a = new RequestAttempt(plan, true);
    a.first();
    assert.equal(a.next(err, allUp).kind, 'send');
    assert.deepEqual(a.next(answer(421, 'region=a'), allUp), { kind: 'send', region: 'a', reason: 'replay' });
  });

  it('treats 504 (sync write unconfirmed) as an answer, not a failure', () => {
    const a = new RequestAttempt(plan, true);
    a.first();
    assert.equal(a.verdict(answer(504)), 'ok');
    assert.deepEqual(a.next(answer(504), allUp), { kind: 'deliver' });
  });
});
