import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { echoClientSubnet, parseClientSubnet } from './ecs.js';

const opt = (family: number, source: number, scope: number, bytes: number[]) =>
  Buffer.from([family >> 8, family & 0xff, source, scope, ...bytes]);

describe('parseClientSubnet', () => {
  it('reads IPv4 and IPv6 subnets', () => {
    assert.deepEqual(parseClientSubnet(opt(1, 24, 0, [81, 2, 69])), {
      ok: true,
      subnet: {
        family: 1,
        sourcePrefixLength: 24,
        address: '81.2.69.0',
        addressBytes: Buffer.from([81, 2, 69]),
      },
    });
    const v6 = parseClientSubnet(opt(2, 32, 0, [0x20, 0x01, 0x02, 0x40]));
    assert.equal(v6.ok && v6.subnet.address, '2001:240:0:0:0:0:0:0');
    const zero = parseClientSubnet(opt(1, 0, 0, []));
    assert.equal(zero.ok && zero.subnet.address, '0.0.0.0');
  });

  it('rejects what RFC 7871 section 6 rejects', () => {
    for (const [why, data] of [
      ['short', Buffer.from([0, 1, 24])],
      ['family 3', opt(3, 24, 0, [1, 2, 3])],
      ['prefix > 32', opt(1, 33, 0, [1, 2, 3, 4, 5])],
      ['too many bytes', opt(1, 16, 0, [1, 2, 3])],
      ['too few bytes', opt(1, 24, 0, [1, 2])],
      ['bits past the prefix', opt(1, 20, 0, [10, 1, 0x0f])],
    ] as const) {
      assert.equal(parseClientSubnet(data).ok, false, why);
    }
  });
});

describe('echoClientSubnet', () => {
  it('echoes family, source prefix and address with our scope', () => {
    const p = parseClientSubnet(opt(1, 24, 0, [81, 2, 69]));
    assert.ok(p.ok);
    assert.deepEqual(echoClientSubnet(p.subnet, 16), opt(1, 24, 16, [81, 2, 69]));
  });
});
