import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MeridianError } from './errors.js';
import {
  decodeToken,
  dominates,
  encodeToken,
  mergeVersions,
  normalizeVersion,
  type VersionVector,
  versionsEqual,
} from './version.js';

const regionArb = fc.constantFrom('us-east-1', 'eu-west-1', 'ap-northeast-1', 'sa-east-1', 'x');
const versionArb: fc.Arbitrary<VersionVector> = fc
  .dictionary(regionArb, fc.nat({ max: 2 ** 40 }))
  .map((v) => ({ ...v }));

describe('version vectors', () => {
  it('merge is commutative, associative, idempotent and dominates both inputs', () => {
    fc.assert(
      fc.property(versionArb, versionArb, versionArb, (a, b, c) => {
        assert.ok(versionsEqual(mergeVersions(a, b), mergeVersions(b, a)));
        assert.ok(
          versionsEqual(mergeVersions(mergeVersions(a, b), c), mergeVersions(a, mergeVersions(b, c))),
        );
        assert.ok(versionsEqual(mergeVersions(a, a), a));
        const m = mergeVersions(a, b);
        assert.ok(dominates(m, a) && dominates(m, b));
      }),
    );
  });
});

describe('version token', () => {
  it('round-trips every version (in canonical form)', () => {
    fc.assert(
      fc.property(versionArb, (v) => {
        assert.deepEqual({ ...decodeToken(encodeToken(v)) }, { ...normalizeVersion(v) });
      }),
    );
  });

  it('equal versions encode to the same token', () => {
    fc.assert(
      fc.property(versionArb, (v) => {
        const shuffled = Object.fromEntries(Object.entries(v).reverse());
        assert.equal(encodeToken(shuffled), encodeToken(v));
      }),
    );
  });

  it('decodes a token the same every time (the cache of recent tokens), and what it gives cannot be changed', () => {
    // Built by hand, not by encodeToken: the first decode parses, the second comes from the cache.
    const token = Buffer.from(JSON.stringify({ f: 1, v: { 'us-east-1': 3, 'eu-west-1': 2 } })).toString(
      'base64url',
    );
    const first = decodeToken(token);
    assert.deepEqual({ ...first }, { 'eu-west-1': 2, 'us-east-1': 3 });
    assert.deepEqual({ ...decodeToken(token) }, { ...first });
    assert.throws(() => {
      (first as Record<string, number>)['us-east-1'] = 9;
    }, TypeError);
    assert.equal(decodeToken(token)['us-east-1'], 3);
  });

  it('a token decodes to the version it was encoded from, even if that object changes later', () => {
    const v: Record<string, number> = { 'us-east-1': 1 };
    const token = encodeToken(v);
    v['us-east-1'] = 5;
    assert.deepEqual({ ...decodeToken(token) }, { 'us-east-1': 1 });
  });

  it('more distinct tokens than the cache holds all still decode right', () => {
    const tokens: [string, number][] = [];
    for (let i = 1; i <= 3000; i++) {
      tokens.push([Buffer.from(JSON.stringify({ f: 1, v: { 'eu-west-1': i } })).toString('base64url'), i]);
    }
    for (const [t, i] of tokens) assert.equal(decodeToken(t)['eu-west-1'], i);
    for (const [t, i] of tokens) assert.equal(decodeToken(t)['eu-west-1'], i);
    const bad = Buffer.from(JSON.stringify({ f: 1, v: { 'eu-west-1': -1 } })).toString('base64url');
    assert.throws(() => decodeToken(bad), MeridianError);
    assert.throws(() => decodeToken(bad), MeridianError);
  });

  it('garbage gives MeridianError(bad_token), never a crash', () => {
    const garbage = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.base64String(),
      fc.json().map((j) => Buffer.from(j).toString('base64url')),
      fc
        .record({ f: fc.oneof(fc.constant(1), fc.integer()), v: fc.anything() })
        .map((o) => Buffer.from(JSON.stringify(o) ?? 'null').toString('base64url')),
    );
    fc.assert(
      fc.property(garbage, (t) => {
        try {
          decodeToken(t);
        } catch (e) {
          assert.ok(e instanceof MeridianError, `threw ${String(e)}`);
          assert.equal(e.code, 'bad_token');
          assert.equal(e.status, 400);
        }
      }),
      { numRuns: 500 },
    );
  });
});
