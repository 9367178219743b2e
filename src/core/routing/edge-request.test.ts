import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeToken } from '../version.js';
import { answerCookies, EDGE_DEFAULTS, isRegionsFault, routeRequest } from './edge-request.js';
import { encodeSticky, readCookie, STICKY_COOKIE, VERSION_COOKIE } from './request.js';
import { RoutingTable } from './table.js';

const regions = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
];
const ctx = { config: { policy: 'latency' as const, weights: {}, priority: [] }, edgeLocation: regions[1]! };

function table(): RoutingTable {
  const t = new RoutingTable(regions, ctx, {}, 0);
  t.observe('eu-west-1', { kind: 'probe-ok', rttMs: 1 }, 1);
  t.observe('us-east-1', { kind: 'probe-ok', rttMs: 80 }, 1);
  return t;
}
const known = (r: string) => r === 'us-east-1' || r === 'eu-west-1';
const token = encodeToken({ 'us-east-1': 7 });
const cookie = `${STICKY_COOKIE}=${encodeSticky('us-east-1', 5000)}; ${VERSION_COOKIE}=${token}`;

describe('routeRequest (the edge server and the simulator route with it)', () => {
  it('sends a read to the sticky region while the cookie is fresh, with the version cookie as its token', () => {
    const r = routeRequest(
      table(),
      { method: 'GET', hasIdempotencyKey: false, cookie, hasMinVersion: false },
      1000,
      0,
      known,
    );
    assert.equal(r.attempt.first().region, 'us-east-1');
    assert.equal(r.attempt.reason, 'sticky');
    assert.equal(r.write, false);
    assert.equal(r.cookieToken, token);
    assert.equal(r.attempt.idempotent, true);
  });

  it('routes by policy once the sticky window is over, and never sticks a write', () => {
    const late = routeRequest(
      table(),
      { method: 'GET', hasIdempotencyKey: false, cookie, hasMinVersion: false },
      6000,
      0,
      known,
    );
    assert.equal(late.attempt.first().region, 'eu-west-1');
    const write = routeRequest(
      table(),
      { method: 'POST', hasIdempotencyKey: false, cookie, hasMinVersion: false },
      1000,
      0,
      known,
    );
    assert.equal(write.attempt.first().region, 'eu-west-1');
    assert.equal(write.write, true);
    assert.equal(write.cookieToken, undefined, 'a write carries no cookie token');
    assert.equal(write.attempt.idempotent, false, 'a POST without a key is not retried');
  });

  it("keeps the client's own token: the cookie's is not added when it sent Meridian-Min-Version", () => {
    const r = routeRequest(
      table(),
      { method: 'GET', hasIdempotencyKey: false, cookie, hasMinVersion: true },
      1000,
      0,
      known,
    );
    assert.equal(r.cookieToken, undefined);
  });
});

describe('answerCookies', () => {
  it('after a successful write: sticky to the region that took it, the version merged into the cookie', () => {
    const set = answerCookies(
      true,
      200,
      cookie,
      encodeToken({ 'eu-west-1': 3 }),
      'eu-west-1',
      1000,
      EDGE_DEFAULTS.stickyMs,
    )!;
    const jar = set.map((c) => c.split(';')[0]).join('; ');
    assert.equal(readCookie(jar, STICKY_COOKIE), encodeSticky('eu-west-1', 1000 + EDGE_DEFAULTS.stickyMs));
    assert.equal(readCookie(jar, VERSION_COOKIE), encodeToken({ 'us-east-1': 7, 'eu-west-1': 3 }));
  });

  it('sets nothing after a read or a failed write', () => {
    assert.equal(answerCookies(false, 200, cookie, token, 'eu-west-1', 0, 10_000), undefined);
    assert.equal(answerCookies(true, 421, cookie, token, 'eu-west-1', 0, 10_000), undefined);
    assert.equal(answerCookies(true, 504, cookie, token, 'eu-west-1', 0, 10_000), undefined);
  });
});

describe('isRegionsFault', () => {
  it('a 5xx blaming the request (token wait, sync timeout) does not count against the region', () => {
    assert.equal(isRegionsFault('not_caught_up'), false);
    assert.equal(isRegionsFault('sync_timeout'), false);
    assert.equal(isRegionsFault('internal'), true);
    assert.equal(isRegionsFault(undefined), true);
  });
});
