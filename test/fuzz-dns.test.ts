/**
 * The DNS part of the fuzzing suite: random and mangled DNS messages over UDP and TCP (framed,
 * pipelined, and unframed garbage) for MERIDIAN_FUZZ_MS (default 20 s), in batches; after each
 * batch every query that deserves an answer got one with its id, and a normal query is answered.
 * The seed is printed; MERIDIAN_FUZZ_SEED replays it. test/dns-fuzz.test.ts is the fixed-seed,
 * fixed-count version of the same.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { appendFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { dnsFixture, waitFor } from './dns-helpers.js';
import { expectsDnsReply, randomDnsMessage } from './fuzz-dns-gen.js';
import { prng } from './fuzz-http-gen.js';
import { FUZZ_COUNT, FUZZ_MS, FUZZ_SEED } from './fuzz-support.js';

const BATCH = 50;

async function stillAnswers(port: number): Promise<void> {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setLocalAddress('127.0.2.9');
  resolver.setServers([`127.0.0.1:${port}`]);
  assert.deepEqual(await resolver.resolve4('app.meridian.test'), ['127.0.2.1']);
}

function framed(msgs: Buffer[]): Buffer {
  return Buffer.concat(
    msgs.flatMap((m) => {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(m.length);
      return [p, m];
    }),
  );
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe(`GeoDNS fuzzing (seed ${FUZZ_SEED}; MERIDIAN_FUZZ_SEED replays, ${FUZZ_MS} ms)`, () => {
  const fx = dnsFixture();

  it('answers or drops every random message over UDP and TCP, and keeps answering', async () => {
    const rnd = prng(FUZZ_SEED);
    const start = Date.now();
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    let udpReplies = 0;
    udp.on('message', () => {
      udpReplies++;
    });
    let cases = 0;
    let batch = 0;
    let lastProgress = start;
    try {
      for (; cases < FUZZ_COUNT && Date.now() - start < FUZZ_MS; batch++) {
        // UDP: a batch small enough for the socket buffers, so nothing is lost to the kernel.
        const before = fx.server.stats().udpQueries;
        const repliesBefore = udpReplies;
        let expected = 0;
        for (let i = 0; i < BATCH; i++) {
          const m = randomDnsMessage(rnd);
          if (expectsDnsReply(m)) expected++;
          udp.send(m, fx.server.port, '127.0.0.1');
        }
        cases += BATCH;
        await waitFor(`batch ${batch}: the server to read the UDP batch`, async () =>
          fx.server.stats().udpQueries - before >= BATCH ? true : undefined,
        );
        await waitFor(`batch ${batch}: ${expected} UDP replies`, async () =>
          udpReplies - repliesBefore >= expected ? true : undefined,
        );
        // TCP: the same kind of messages framed and pipelined on one connection, answered in order.
        const msgs = Array.from({ length: BATCH }, () => randomDnsMessage(rnd)).filter((m) => m.length > 0);
        const want = msgs.filter(expectsDnsReply).map((m) => m.readUInt16BE(0));
        const s = await open(fx.server.port);
        const got: number[] = [];
        let buf = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            got.push(buf.readUInt16BE(2));
            buf = buf.subarray(2 + buf.readUInt16BE(0));
          }
        });
        s.write(framed(msgs));
        await waitFor(`batch ${batch}: ${want.length} TCP replies`, async () =>
          got.length >= want.length ? true : undefined,
        );
        assert.deepEqual(got, want, `batch ${batch}: one TCP answer per query, in order`);
        s.destroy();
        cases += msgs.length;
        // Unframed garbage, then hang up.
        const g = await open(fx.server.port);
        g.on('error', () => {});
        const noise = Buffer.from(
          Array.from({ length: 1 + Math.floor(rnd() * 2000) }, () => Math.floor(rnd() * 256)),
        );
        await new Promise<void>((r) => g.write(noise, () => r()));
        g.destroy();
        cases++;
        await stillAnswers(fx.server.port);
        if (process.env.MERIDIAN_FUZZ_PROGRESS === '1' && Date.now() - lastProgress > 10_000) {
          lastProgress = Date.now();
          const secs = ((lastProgress - start) / 1000).toFixed(0);
          process.stderr.write(`fuzz dns: ${cases} messages in ${secs} s, seed ${FUZZ_SEED}\n`);
        }
      }
    } finally {
      udp.close();
    }
    const ms = Date.now() - start;
    process.stderr.write(`fuzz dns: ${cases} messages in ${batch} batches, ${ms} ms, seed ${FUZZ_SEED}\n`);
    if (process.env.MERIDIAN_FUZZ_REPORT) {
      const statuses = { ...fx.server.stats().byRcode, dropped: fx.server.stats().dropped };
      appendFileSync(
        process.env.MERIDIAN_FUZZ_REPORT,
        `${JSON.stringify({ target: 'dns', seed: FUZZ_SEED, cases, ms, statuses, findings: [], known: {} })}\n`,
      );
    }
    assert.ok(cases > 0);
  });
});
