import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeToken, encodeToken } from '../version.js';
import {
  decodeSticky,
  encodeSticky,
  formatRoute,
  isIdempotent,
  mergeTokens,
  parseReplayRegion,
  parseRoute,
  readCookie,
  rywCookies,
} from './request.js';

describe('edge request rules', () => {
  it('classifies idempotency', () => {
    for (const m of ['GET', 'HEAD', 'PUT', 'DELETE']) assert.equal(isIdempotent(m, false), true);
    assert.equal(isIdempotent('POST', false), false);
    assert.equal(isIdempotent('POST', true), true);
  });

  it('parses Meridian-Replay', () => {
    assert.equal(parseReplayRegion('region=eu-west-1'), 'eu-west-1');
    assert.equal(parseReplayRegion('reason=pinned; region="us-east-1"'), 'us-east-1');
    assert.equal(parseReplayRegion('region=../etc'), undefined);
    assert.equal(parseReplayRegion(undefined), undefined);
  });

  it('formats and parses Meridian-Route', () => {
    const h = formatRoute('geo', 'eu-west-1', 'nearest');
    assert.equal(h, 'policy=geo; region=eu-west-1; reason=nearest');
    assert.deepEqual(parseRoute(h), { policy: 'geo', region: 'eu-west-1', reason: 'nearest' });
  });

  it('reads cookies', () => {
    assert.equal(readCookie('a=1; meridian_region=x.5; b=2', 'meridian_region'), 'x.5');
    assert.equal(readCookie('a=1', 'meridian_region'), undefined);
  });

  it('sticky cookies expire on the edge clock and name known regions only', () => {
    const v = encodeSticky('eu-west-1', 1000);
    const known = (r: string) => r === 'eu-west-1';
    assert.equal(decodeSticky(v, 999, known), 'eu-west-1');
    assert.equal(decodeSticky(v, 1000, known), undefined);
    assert.equal(decodeSticky('zz-1.5000', 0, known), undefined);
    assert.equal(decodeSticky('garbage', 0, known), undefined);
  });

  it('sets both cookies after a write', () => {
    const [sticky, version] = rywCookies('us-east-1', 'tok', 1000, 10_000);
    assert.match(sticky!, /^meridian_region=us-east-1\.11000; Max-Age=10;/);
    assert.match(version!, /^meridian_version=tok;/);
  });

  it('merges version tokens and drops malformed ones', () => {
    const a = encodeToken({ 'us-east-1': 3 });
    const b = encodeToken({ 'us-east-1': 1, 'eu-west-1': 2 });
    assert.deepEqual(decodeToken(mergeTokens(a, b)!), { 'eu-west-1': 2, 'us-east-1': 3 });
    assert.equal(mergeTokens('!!', b), b);
    assert.equal(mergeTokens(undefined, undefined), undefined);
  });
});
