/** Thousands of random and mangled packets over UDP and TCP: the GeoDNS server answers or drops, never dies. */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { dnsFixture, waitFor } from './dns-helpers.js';
import { expectsDnsReply, randomDnsMessage } from './fuzz-dns-gen.js';
import { prng } from './fuzz-http-gen.js';

const SEED = Number(process.env.DNS_FUZZ_SEED ?? 20261126);

async function stillAnswers(port: number): Promise<void> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setLocalAddress('127.0.2.9');
  resolver.setServers([`127.0.0.1:${port}`]);
  assert.deepEqual(await resolver.resolve4('app.meridian.test'), ['127.0.2.1']);
}

describe(`GeoDNS under random input (seed ${SEED}, DNS_FUZZ_SEED to replay)`, () => {
  const fx = dnsFixture();

  it('UDP: 4000 random datagrams, every one answered or dropped, then a normal query works', async () => {
    const rnd = prng(SEED);
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    let replies = 0;
    let badIds = 0;
    const sentIds = new Set<number>();
    sock.on('message', (m) => {
      replies++;
      if (m.length < 12 || !sentIds.has(m.readUInt16BE(0))) badIds++;
    });
    let sent = 0;
    let expected = 0;
    const before0 = fx.server.stats().udpQueries;
    try {
      // Batches small enough for the socket buffers, so nothing is lost to the kernel.
      for (let batch = 0; batch < 80; batch++) {
        for (let i = 0; i < 50; i++) {
          const m = randomDnsMessage(rnd);
          if (m.length >= 2) sentIds.add(m.readUInt16BE(0));
          if (expectsDnsReply(m)) expected++;
          sent++;
          sock.send(m, fx.server.port, '127.0.0.1');
        }
        await waitFor('the fx.server to read the batch', async () =>
          fx.server.stats().udpQueries - before0 >= sent ? true : undefined,
        );
      }
      await waitFor(`${expected} replies`, async () => (replies >= expected ? true : undefined));
    } finally {
      sock.close();
    }
    assert.equal(replies, expected);
    assert.equal(badIds, 0, 'every reply carries the id of a query');
    const s = fx.server.stats();
    assert.ok((s.byRcode.FORMERR ?? 0) > 100, JSON.stringify(s));
    assert.ok(s.dropped > 0);
    await stillAnswers(fx.server.port);
  });

  it('TCP: framed random messages answered in order, garbage streams and half frames survived', async () => {
    const rnd = prng(SEED + 1);
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(fx.server.port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
    // Four connections, 300 framed messages each, written in one go (pipelined).
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const s = await open();
        const msgs = Array.from({ length: 300 }, () => randomDnsMessage(rnd)).filter((m) => m.length > 0);
        const want = msgs.filter(expectsDnsReply).map((m) => m.readUInt16BE(0));
        const got: number[] = [];
        let buf = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const len = buf.readUInt16BE(0);
            got.push(buf.readUInt16BE(2));
            buf = buf.subarray(2 + len);
          }
        });
        s.write(
          Buffer.concat(
            msgs.flatMap((m) => {
              const p = Buffer.alloc(2);
              p.writeUInt16BE(m.length);
              return [p, m];
            }),
          ),
        );
        await waitFor('all TCP replies', async () => (got.length >= want.length ? true : undefined), 10_000);
        assert.deepEqual(got, want, 'one answer per query, in order');
        s.destroy();
      }),
    );
    // Unframed garbage, and a frame that promises more than it sends, then hang up.
    for (let i = 0; i < 50; i++) {
      const s = await open();
      s.on('error', () => {});
      const noise = Buffer.from(
        Array.from({ length: 1 + Math.floor(rnd() * 2000) }, () => Math.floor(rnd() * 256)),
      );
      await new Promise<void>((r) => s.write(noise, () => r()));
      s.destroy();
    }
    await stillAnswers(fx.server.port);
  });
});
