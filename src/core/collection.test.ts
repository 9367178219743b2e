import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { homeOfNewKey } from './collection.js';
import type { CollectionSpec } from './types.js';

const REGIONS = ['us-east-1', 'eu-west-1', 'ap-northeast-1', 'sa-east-1', 'ap-south-1'];
const pinned: CollectionSpec = { name: 'profiles', policy: 'pinned', replication: { mode: 'async' } };
const keyArb = fc.string({ minLength: 1, maxLength: 40 });
const regionsArb = fc.shuffledSubarray(REGIONS, { minLength: 1 });

describe('homeOfNewKey (the home of a pinned key before any region has seen it)', () => {
  it('is the same whatever the order of the region list (every node agrees)', () => {
    fc.assert(
      fc.property(keyArb, regionsArb, (key, regions) => {
        const sorted = [...regions].sort();
        const home = homeOfNewKey(pinned, regions, key);
        assert.equal(homeOfNewKey(pinned, sorted, key), home);
        assert.equal(homeOfNewKey(pinned, [...sorted].reverse(), key), home);
        assert.ok(regions.includes(home));
      }),
    );
  });

  it('stays inside the residency', () => {
    fc.assert(
      fc.property(keyArb, regionsArb, (key, residency) => {
        const spec: CollectionSpec = { ...pinned, residency };
        assert.ok(residency.includes(homeOfNewKey(spec, REGIONS, key)));
      }),
    );
  });

  it('adding a region moves a key only to the new region', () => {
    fc.assert(
      fc.property(keyArb, fc.integer({ min: 1, max: REGIONS.length - 1 }), (key, n) => {
        const before = homeOfNewKey(pinned, REGIONS.slice(0, n), key);
        const after = homeOfNewKey(pinned, REGIONS.slice(0, n + 1), key);
        assert.ok(after === before || after === REGIONS[n]);
      }),
    );
  });

  it('spreads keys evenly (within 10% of a fair share over 30,000 keys)', () => {
    const counts = new Map<string, number>();
    const n = 30_000;
    for (let i = 0; i < n; i++) {
      const home = homeOfNewKey(pinned, REGIONS, `user-${i}`);
      counts.set(home, (counts.get(home) ?? 0) + 1);
    }
    const fair = n / REGIONS.length;
    for (const r of REGIONS) {
      const c = counts.get(r) ?? 0;
      assert.ok(Math.abs(c - fair) < fair * 0.1, `${r}: ${c} keys, fair share ${fair}`);
    }
  });

  it('is fixed for known keys (the hash is part of the data contract)', () => {
    // If this fails, the hash changed: keys not written yet would be homed elsewhere than before.
    const three = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];
    const got = ['alice', 'bob', 'a31', 'p10'].map((k) => homeOfNewKey(pinned, three, k));
    assert.deepEqual(got, GOLDEN);
  });
});

const GOLDEN = ['eu-west-1', 'us-east-1', 'eu-west-1', 'ap-northeast-1'];
