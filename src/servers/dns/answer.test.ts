import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet } from 'dns-packet';
import * as packet from 'dns-packet';
import fc from 'fast-check';
import { parseConfig } from '../../adapters/config.js';
import { makeGeoIp } from '../../adapters/geoip.js';
import { answerQuery, type Outcome, type Router } from './answer.js';
import { zonePlan } from './zone.js';

const cfg = parseConfig({
  secrets: { clusterSecret: 'x'.repeat(16), adminToken: 'y'.repeat(16) },
  regions: [
    { id: 'us-east-1', lat: 38.9, lon: -77 },
    { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
    { id: 'ap-northeast-1', lat: 35.7, lon: 139.7 },
  ].map((r, i) => ({
    id: r.id,
    lat: r.lat,
    lon: r.lon,
    node: { listen: { port: 7070 }, url: `http://127.0.${i + 1}.1:7070` },
    edge: { listen: { port: 8080 }, url: `http://127.0.${i + 1}.1:8080` },
  })),
  dns: { names: ['app', 'api.v1'], addresses: { 'ap-northeast-1': ['127.0.3.1', 'fd00::3'] } },
});

// Subnets placed by overrides: a /16 near each region, and the stub resolver's own address.
const geo = makeGeoIp(
  [
    { cidr: '10.1.0.0/16', lat: 40.7, lon: -74 },
    { cidr: '10.2.0.0/16', lat: 48.9, lon: 2.35 },
    { cidr: '10.3.0.0/16', lat: 37.5, lon: 127 },
    { cidr: 'fd00:3::/32', lat: 34.7, lon: 135.5 },
    { cidr: '192.0.2.0/24', lat: 52.5, lon: 13.4 },
  ],
  undefined,
  {},
);

function router(down: string[] = [], multivalue = 1): Router {
  const plan = { ...zonePlan(cfg, 1000), multivalue };
  return { plan, geo, isHealthy: (id) => !down.includes(id) };
}

function query(
  name: string,
  type: string,
  extra: Partial<Packet> & { ecs?: string; udp?: number } = {},
): Buffer {
  const additionals: Packet['additionals'] = [];
  if (extra.ecs !== undefined || extra.udp !== undefined) {
    const options: unknown[] = [];
    if (extra.ecs !== undefined) {
      const [ip = '', len = '0'] = extra.ecs.split('/');
      options.push({ code: 'CLIENT_SUBNET', ip, sourcePrefixLength: Number(len) });
    }
    additionals.push({ type: 'OPT', name: '.', udpPayloadSize: extra.udp ?? 1232, options } as never);
  }
  return packet.encode({
    type: 'query',
    id: 4242,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals,
  });
}

function ask(msg: Buffer, r: Router = router(), sourceIp = '198.51.100.1', transport: 'udp' | 'tcp' = 'udp') {
  const out = answerQuery(msg, { sourceIp, transport }, r);
  assert.equal(out.kind, 'reply');
  const reply = out as Extract<Outcome, { kind: 'reply' }>;
  return { out: reply, res: packet.decode(reply.bytes) as packet.DecodedPacket & { rcode: string } };
}

const data = (res: packet.DecodedPacket) =>
  (res.answers ?? []).map((a) => ('data' in a ? a.data : undefined));
const ecsOf = (res: packet.DecodedPacket) => {
  const opt = res.additionals?.find((a) => a.type === 'OPT');
  return opt && 'options' in opt ? opt.options.find((o) => o.code === 8) : undefined;
};

describe('answerQuery: choosing the region', () => {
  it('answers the nearest region by client subnet and echoes ECS with the scope set', () => {
    for (const [subnet, want] of [
      ['10.1.7.0/24', '127.0.1.1'],
      ['10.2.7.0/24', '127.0.2.1'],
      ['10.3.7.0/24', '127.0.3.1'],
    ] as const) {
      const { res, out } = ask(query('app.meridian.test', 'A', { ecs: subnet }));
      assert.deepEqual(data(res), [want], subnet);
      assert.equal(out.locatedBy, 'ecs');
      assert.equal(res.flag_aa, true);
      assert.equal(res.id, 4242);
      assert.equal(res.flag_rd, true);
      const ecs = ecsOf(res) as { sourcePrefixLength: number; scopePrefixLength: number; ip: string };
      assert.equal(ecs.sourcePrefixLength, 24);
      assert.equal(ecs.scopePrefixLength, 16, 'scope = the width of the matching network');
      assert.equal(ecs.ip, subnet.replace('/24', ''));
      assert.equal(res.answers?.[0]?.type === 'A' && res.answers[0].ttl, 60);
    }
  });

  it('uses the resolver address without ECS, or when the subnet cannot be placed (scope 0)', () => {
    const { res } = ask(query('app.meridian.test', 'A'), router(), '10.3.0.53');
    assert.deepEqual(data(res), ['127.0.3.1']);
    const viaFallback = ask(
      query('app.meridian.test', 'A', { ecs: '203.0.113.0/24' }),
      router(),
      '10.2.0.53',
    );
    assert.deepEqual(data(viaFallback.res), ['127.0.2.1']);
    assert.equal(viaFallback.out.locatedBy, 'source');
    assert.equal((ecsOf(viaFallback.res) as { scopePrefixLength: number }).scopePrefixLength, 0);
    // Source prefix 0 is the client opting out: the subnet is not used.
    const optOut = ask(query('app.meridian.test', 'A', { ecs: '0.0.0.0/0' }), router(), '10.1.0.53');
    assert.deepEqual(data(optOut.res), ['127.0.1.1']);
  });

  it('answers AAAA by IPv6 client subnet from regions that have IPv6 addresses', () => {
    const { res } = ask(query('app.meridian.test', 'AAAA', { ecs: 'fd00:3::/48' }));
    assert.deepEqual(data(res), ['fd00::3']);
    assert.equal((ecsOf(res) as { scopePrefixLength: number }).scopePrefixLength, 32);
  });

  it('never answers an unhealthy region, and fails open with a short TTL when all are down', () => {
    const { res } = ask(query('app.meridian.test', 'A', { ecs: '10.3.1.0/24' }), router(['ap-northeast-1']));
    assert.notDeepEqual(data(res), ['127.0.3.1']);
    assert.equal(res.answers?.length, 1);
    const all = ask(
      query('app.meridian.test', 'A', { ecs: '10.3.1.0/24' }),
      router(['us-east-1', 'eu-west-1', 'ap-northeast-1']),
    );
    assert.deepEqual(data(all.res), ['127.0.3.1']);
    assert.equal(all.out.failOpen, true);
    const a = all.res.answers?.[0];
    assert.equal(a && 'ttl' in a ? a.ttl : -1, 5);
  });

  it('multivalue answers several healthy regions, nearest first', () => {
    const { res, out } = ask(
      query('app.meridian.test', 'A', { ecs: '10.2.0.0/24' }),
      router(['us-east-1'], 3),
    );
    assert.deepEqual(data(res), ['127.0.2.1', '127.0.3.1']);
    assert.deepEqual(out.regions, ['eu-west-1', 'ap-northeast-1']);
    const three = ask(query('app.meridian.test', 'A', { ecs: '10.1.0.0/24' }), router([], 3));
    assert.deepEqual(data(three.res), ['127.0.1.1', '127.0.2.1', '127.0.3.1']);
  });

  it('keeps the question name as sent (0x20 case randomisation)', () => {
    const { res } = ask(query('aPp.MeRiDiAn.TeSt', 'A'));
    assert.equal(res.questions?.[0]?.name, 'aPp.MeRiDiAn.TeSt');
    assert.equal(res.answers?.[0]?.name, 'aPp.MeRiDiAn.TeSt');
  });
});

describe('answerQuery: the zone', () => {
  it('SOA and NS at the apex, with glue', () => {
    const soa = ask(query('meridian.test', 'SOA')).res;
    const rec = soa.answers?.[0];
    assert.equal(rec?.type, 'SOA');
    assert.deepEqual(rec && 'data' in rec ? rec.data : undefined, {
      mname: 'ns1.meridian.test',
      rname: 'hostmaster.meridian.test',
      serial: 1000,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: 60,
    });
    const ns = ask(query('meridian.test', 'NS')).res;
    assert.deepEqual(data(ns), ['ns1.meridian.test']);
    const glue = ns.additionals?.find((a) => a.type === 'A');
    assert.equal(glue && 'data' in glue ? glue.data : undefined, '127.0.0.1');
    const v6 = { ...router(), plan: zonePlan(cfg, 1000, '::1') };
    const glue6 = ask(query('meridian.test', 'NS'), v6).res.additionals?.filter((a) => a.type !== 'OPT');
    assert.deepEqual(
      glue6?.map((a) => [a.type, 'data' in a ? a.data : undefined]),
      [['AAAA', '::1']],
    );
    assert.equal(zonePlan(cfg, 1000, '0.0.0.0').nsV4.length, 0, 'no glue for a wildcard listen address');
  });

  it('NXDOMAIN with the SOA for unknown names, NODATA for other types and empty non-terminals', () => {
    const nx = ask(query('nope.meridian.test', 'A')).res;
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.flag_aa, true);
    assert.equal(nx.authorities?.[0]?.type, 'SOA');
    const below = ask(query('x.app.meridian.test', 'A')).res;
    assert.equal(below.rcode, 'NXDOMAIN');
    for (const [name, type] of [
      ['app.meridian.test', 'MX'],
      ['app.meridian.test', 'TXT'],
      ['meridian.test', 'A'],
      ['v1.meridian.test', 'A'],
    ]) {
      const r = ask(query(name as string, type as string)).res;
      assert.equal(r.rcode, 'NOERROR', `${name} ${type}`);
      assert.equal(r.answers?.length, 0);
      assert.equal(r.authorities?.[0]?.type, 'SOA');
    }
    assert.deepEqual(data(ask(query('api.v1.meridian.test', 'A', { ecs: '10.1.0.0/24' })).res), [
      '127.0.1.1',
    ]);
  });

  it('REFUSED for zone transfers', () => {
    assert.equal(ask(query('meridian.test', 'AXFR'), router(), '10.1.0.1', 'tcp').res.rcode, 'REFUSED');
    assert.equal(ask(query('meridian.test', 'IXFR')).res.rcode, 'REFUSED');
  });

  it('REFUSED outside the zone, without AA', () => {
    for (const name of ['example.com', 'xmeridian.test', 'test', '']) {
      const r = ask(query(name, 'A')).res;
      assert.equal(r.rcode, 'REFUSED', name);
      assert.equal(r.flag_aa, false);
    }
  });
});

describe('answerQuery: EDNS, size and malformed input', () => {
  it('sets TC on UDP answers over 512 bytes without EDNS (or over the EDNS size) but not over TCP', () => {
    // dns-packet does not compress names: an A record for app.meridian.test takes 33 bytes.
    const many = Array.from({ length: 30 }, (_, i) => `127.0.1.${i + 1}`);
    const big = { ...router([], 32) };
    big.plan = { ...big.plan, regions: big.plan.regions.map((r, i) => (i === 0 ? { ...r, v4: many } : r)) };
    const udp = ask(query('app.meridian.test', 'A'), big, '10.1.0.1');
    assert.equal(udp.res.flag_tc, true);
    assert.equal(udp.res.answers?.length, 0);
    assert.ok(udp.out.bytes.length <= 512);
    const edns = ask(query('app.meridian.test', 'A', { udp: 4096 }), big, '10.1.0.1');
    assert.equal(edns.res.flag_tc, false, '30 A records fit in 1232 bytes');
    const small = ask(query('app.meridian.test', 'A', { udp: 600 }), big, '10.1.0.1');
    assert.equal(small.res.flag_tc, true);
    const tcp = ask(query('app.meridian.test', 'A'), big, '10.1.0.1', 'tcp');
    assert.equal(tcp.res.flag_tc, false);
    assert.equal(tcp.res.answers?.length, 32, '30 from the nearest region, then the other two');
  });

  it('FORMERR for a bad ECS option, two questions, or a body that does not parse', () => {
    const bad = query('app.meridian.test', 'A', { ecs: '10.1.0.0/24' });
    // ECS option: code 8, length 7, then family 1: make it family 3.
    const famIdx = bad.indexOf(Buffer.from([0x00, 0x08, 0x00, 0x07, 0x00, 0x01]));
    bad.writeUInt16BE(3, famIdx + 4);
    assert.equal(ask(bad).res.rcode, 'FORMERR');
    const two = packet.encode({
      type: 'query',
      id: 1,
      questions: [
        { name: 'app.meridian.test', type: 'A' },
        { name: 'app.meridian.test', type: 'AAAA' },
      ],
    });
    assert.equal(ask(two).res.rcode, 'FORMERR');
    const cut = query('app.meridian.test', 'A').subarray(0, 20);
    const r = ask(cut).res;
    assert.equal(r.rcode, 'FORMERR');
    assert.equal(r.id, 4242);
  });

  it('BADVERS for EDNS version 1, NOTIMP for other opcodes, drops responses and runts', () => {
    const q = query('app.meridian.test', 'A', { udp: 1232 });
    const v1 = Buffer.from(q);
    // OPT is the last record: name(1) type(2) class(2) extrcode(1) version(1)...
    v1[v1.length - 2 - 2 - 1] = 1;
    const res = ask(v1).res;
    const opt = res.additionals?.find((a) => a.type === 'OPT') as { extendedRcode: number } | undefined;
    assert.equal(opt?.extendedRcode, 1);
    const notify = Buffer.from(q);
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
    assert.equal(ask(notify).res.rcode, 'NOTIMP');
    const response = Buffer.from(q);
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    assert.equal(answerQuery(response, { sourceIp: '::1', transport: 'udp' }, router()).kind, 'drop');
    assert.equal(answerQuery(Buffer.alloc(11), { sourceIp: '::1', transport: 'udp' }, router()).kind, 'drop');
  });

  it('never throws on arbitrary bytes, and never answers an answer', () => {
    const r = router();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        const buf = Buffer.from(bytes);
        const out = answerQuery(buf, { sourceIp: '10.1.0.1', transport: 'udp' }, r);
        if (buf.length < 12 || (buf[2] ?? 0) & 0x80) assert.equal(out.kind, 'drop');
        else assert.equal(out.kind, 'reply');
        if (out.kind === 'reply') assert.ok(out.bytes.length <= 1232);
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws on mutations of a valid query', () => {
    const r = router();
    const base = query('app.meridian.test', 'A', { ecs: '10.1.0.0/24' });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        (edits) => {
          const buf = Buffer.from(base);
          for (const [i, v] of edits) buf[i] = v;
          answerQuery(buf, { sourceIp: '10.1.0.1', transport: 'udp' }, r);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
