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
