import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  countryCentroids,
  makeGeoIp,
  normalizeIp,
  openGeoIp,
  parseCidr,
  parseClientLocation,
  parseIp,
} from './geoip.js';

describe('parseIp', () => {
  it('parses IPv4, IPv6 and unwraps IPv4-mapped IPv6', () => {
    assert.deepEqual(parseIp('10.1.2.3'), { v6: false, bits: 0x0a010203n });
    assert.deepEqual(parseIp('::1'), { v6: true, bits: 1n });
    assert.deepEqual(parseIp('2001:db8::ff00:42:8329'), {
      v6: true,
      bits: 0x20010db8000000000000ff0000428329n,
    });
    assert.deepEqual(parseIp('::ffff:10.1.2.3'), { v6: false, bits: 0x0a010203n });
    assert.deepEqual(parseIp('::ffff:a01:203'), { v6: false, bits: 0x0a010203n });
    assert.deepEqual(parseIp('64:ff9b::1.2.3.4')?.bits, 0x0064ff9b000000000000000001020304n);
    assert.equal(parseIp('fe80::1%eth0')?.v6, true);
    for (const bad of ['', '1.2.3', '1.2.3.256', 'x::', '1:2:3:4:5:6:7:8:9', 'localhost']) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it('round-trips every IPv4 address through its mapped IPv6 form', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        assert.equal(normalizeIp(`::ffff:${ip}`), normalizeIp(ip));
        assert.deepEqual(parseIp(`::ffff:${ip}`), parseIp(ip));
      }),
    );
  });

  it('parses every IPv6 address fast-check makes, in any notation', () => {
    fc.assert(fc.property(fc.ipV6(), (ip) => assert.ok(parseIp(ip), ip)));
  });
});

describe('parseCidr', () => {
  it('clears host bits and rejects nonsense', () => {
    assert.deepEqual(parseCidr('10.9.8.7/8'), { v6: false, prefix: 8, network: 0x0a000000n });
    assert.equal(parseCidr('2001:db8::/32').prefix, 32);
    assert.equal(parseCidr('1.2.3.4').prefix, 32);
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), parseCidr('10.0.0.0/8'));
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'nope/8', '::/129', '10.0.0.0/-1']) {
      assert.throws(() => parseCidr(bad), { code: 'bad_request' }, bad);
    }
  });
});

describe('parseClientLocation', () => {
  it('accepts lat,lon in range and rejects the rest', () => {
    assert.deepEqual(parseClientLocation('48.85,2.35'), { lat: 48.85, lon: 2.35, source: 'header' });
    assert.deepEqual(parseClientLocation(' -33.9 , 151.2 '), { lat: -33.9, lon: 151.2, source: 'header' });
    assert.deepEqual(parseClientLocation(['1,2', '3,4']), { lat: 1, lon: 2, source: 'header' });
    for (const bad of [undefined, '', '91,0', '0,181', '-90.5,0', 'a,b', '1;2', '1,2,3', 'NaN,1', '1e2,3']) {
      assert.equal(parseClientLocation(bad), undefined, String(bad));
    }
    assert.deepEqual(parseClientLocation('-90,180'), { lat: -90, lon: 180, source: 'header' });
  });
});

describe('makeGeoIp', () => {
  const overrides = [
    { cidr: '127.0.0.0/8', lat: 1, lon: 1 },
    { cidr: '127.0.2.0/24', lat: 2, lon: 2 },
    { cidr: 'fd00::/8', lat: 3, lon: 3 },
    { cidr: 'fd00:1::/32', lat: 4, lon: 4 },
  ];

  it('prefers the longest matching override, IPv4 and IPv6, whatever the order', () => {
    const geo = makeGeoIp([...overrides].reverse(), undefined, {});
    assert.deepEqual(geo.locate('127.0.0.1'), { lat: 1, lon: 1, source: 'override' });
    assert.deepEqual(geo.locate('127.0.2.9'), { lat: 2, lon: 2, source: 'override' });
    assert.deepEqual(geo.locate('::ffff:127.0.2.9'), { lat: 2, lon: 2, source: 'override' });
    assert.deepEqual(geo.locate('fd00:2::1'), { lat: 3, lon: 3, source: 'override' });
    assert.deepEqual(geo.locate('fd00:1:ffff::1'), { lat: 4, lon: 4, source: 'override' });
    assert.equal(geo.locate('10.0.0.1'), undefined);
    assert.equal(geo.locate('not an ip'), undefined);
  });

  it('reads city coordinates or maps a country code to its point', () => {
    const records: Record<string, unknown> = {
      '1.1.1.1': { location: { latitude: 10, longitude: 20 } },
      '2.2.2.2': { country_code: 'JP' },
      '3.3.3.3': { country: { iso_code: 'fr' } },
      '4.4.4.4': { country_code: 'ZZ' },
    };
    const geo = makeGeoIp(
      [],
      { getWithPrefixLength: (ip: string) => [records[ip] ?? null, 24] as never },
      {
        JP: { lat: 35, lon: 139 },
        FR: { lat: 48, lon: 2 },
      },
    );
    assert.deepEqual(geo.locate('1.1.1.1'), { lat: 10, lon: 20, source: 'mmdb' });
    assert.deepEqual(geo.locate('::ffff:2.2.2.2'), { lat: 35, lon: 139, source: 'mmdb' });
    assert.deepEqual(geo.locate('3.3.3.3'), { lat: 48, lon: 2, source: 'mmdb' });
    assert.equal(geo.locate('4.4.4.4'), undefined);
    assert.equal(geo.locate('5.5.5.5'), undefined);
  });
});

describe('openGeoIp with the bundled CC0 database', () => {
  it('places well-known addresses in the right country, IPv4 and IPv6', async () => {
    const geo = await openGeoIp({ overrides: [{ cidr: '127.0.1.0/24', lat: 38.9, lon: -77 }] });
    const c = countryCentroids();
    // Long-lived allocations: the University of Tokyo, IIJ, RIPE NCC, Janet.
    assert.deepEqual(geo.locate('133.11.0.1'), { lat: c.JP?.lat, lon: c.JP?.lon, source: 'mmdb' });
    assert.deepEqual(geo.locate('2001:240::1'), { lat: c.JP?.lat, lon: c.JP?.lon, source: 'mmdb' });
    assert.deepEqual(geo.locate('193.0.0.1'), { lat: c.NL?.lat, lon: c.NL?.lon, source: 'mmdb' });
    assert.deepEqual(geo.locate('::ffff:81.2.69.160'), { lat: c.GB?.lat, lon: c.GB?.lon, source: 'mmdb' });
    assert.deepEqual(geo.locate('127.0.1.1'), { lat: 38.9, lon: -77, source: 'override' });
    assert.equal(geo.locate('127.0.9.1'), undefined);
    assert.equal(geo.locateNetwork('127.0.1.1')?.prefixLength, 24);
    // The mmdb's own network width, counted in IPv4 bits for an IPv4 address.
    const p = geo.locateNetwork('133.11.0.1')?.prefixLength ?? -1;
    assert.ok(p >= 8 && p <= 24, String(p));
    assert.equal(geo.locate('10.0.0.1'), undefined);
  });

  it('fails clearly on a missing database', async () => {
    await assert.rejects(openGeoIp({ mmdb: '/nonexistent.mmdb', overrides: [] }), { code: 'unavailable' });
  });

  it('has a point for every country code it ships, inside valid ranges', () => {
    const c = countryCentroids();
    assert.ok(Object.keys(c).length > 240);
    for (const [cc, p] of Object.entries(c)) {
      assert.match(cc, /^[A-Z]{2}$/);
      assert.ok(p.lat >= -90 && p.lat <= 90 && p.lon >= -180 && p.lon <= 180, cc);
    }
  });
});
