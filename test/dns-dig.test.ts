/** The GeoDNS server against the real dig (dnsutils) and Node's own resolver. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  dig,
  digShort,
  dnsConfig,
  dnsFixture,
  type FakeEdge,
  flags,
  REGIONS,
  SUBNET_NEAR,
  startEdges,
  status,
  waitFor,
} from './dns-helpers.js';
import { needTool } from './support/services.js';

describe('GeoDNS with dig', () => {
  const fx = dnsFixture();

  it('answers each region for a client subnet near it, and echoes ECS with a scope', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    for (const r of REGIONS) {
      const out = await dig(fx.server.port, ['app.meridian.test', 'A', `+subnet=${SUBNET_NEAR[r.id]}`]);
      assert.equal(status(out), 'NOERROR');
      assert.ok(flags(out).includes('aa'), out);
      assert.match(
        out,
        new RegExp(`app\\.meridian\\.test\\.\\s+60\\s+IN\\s+A\\s+127\\.0\\.${r.k}\\.1`),
        r.id,
      );
      const ecs = /CLIENT-SUBNET: ([\d.]+)\/(\d+)\/(\d+)/.exec(out);
      assert.ok(ecs, `ECS echoed for ${r.id}:\n${out}`);
      assert.equal(`${ecs[1]}/${ecs[2]}`, SUBNET_NEAR[r.id]);
      assert.ok(Number(ecs[3]) > 0, 'scope prefix set');
    }
  });

  it('answers by the resolver address without ECS, over UDP and TCP', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    for (const r of REGIONS) {
      const src = `127.0.${r.k}.53`;
      assert.deepEqual(await digShort(fx.server.port, ['-b', src, 'app.meridian.test', 'A']), [
        `127.0.${r.k}.1`,
      ]);
      assert.deepEqual(await digShort(fx.server.port, ['-b', src, '+tcp', 'app.meridian.test', 'A']), [
        `127.0.${r.k}.1`,
      ]);
    }
  });

  it('serves SOA and NS at the apex', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const [soa] = await digShort(fx.server.port, ['meridian.test', 'SOA']);
    assert.match(soa ?? '', /^ns1\.meridian\.test\. hostmaster\.meridian\.test\. \d+ 3600 600 86400 60$/);
    const ns = await dig(fx.server.port, ['meridian.test', 'NS']);
    assert.match(ns, /meridian\.test\.\s+60\s+IN\s+NS\s+ns1\.meridian\.test\./);
    assert.match(ns, /ns1\.meridian\.test\.\s+60\s+IN\s+A\s+127\.0\.0\.1/, 'glue');
  });

  it('NXDOMAIN, NODATA and REFUSED where they belong', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const nx = await dig(fx.server.port, ['nope.meridian.test', 'A']);
    assert.equal(status(nx), 'NXDOMAIN');
    assert.match(nx, /AUTHORITY SECTION:\nmeridian\.test\.\s+60\s+IN\s+SOA/);
    const nodata = await dig(fx.server.port, ['app.meridian.test', 'MX']);
    assert.equal(status(nodata), 'NOERROR');
    assert.match(nodata, /ANSWER: 0, AUTHORITY: 1/);
    const refused = await dig(fx.server.port, ['example.com', 'A']);
    assert.equal(status(refused), 'REFUSED');
    assert.ok(!flags(refused).includes('aa'));
  });

  it('stops answering a region whose edge turns unhealthy, and takes it back when it recovers', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const eu = fx.edges[1] as FakeEdge;
    const ask = () =>
      digShort(fx.server.port, ['app.meridian.test', 'A', `+subnet=${SUBNET_NEAR['eu-west-1']}`]);
    assert.deepEqual(await ask(), ['127.0.2.1']);
    eu.healthy = false;
    const other = await waitFor('eu-west-1 to leave the answers', async () => {
      const a = await ask();
      return a[0] !== '127.0.2.1' ? a : undefined;
    });
    // Dublin's next nearest of the three is us-east-1.
    assert.deepEqual(other, ['127.0.1.1']);
    assert.equal(fx.server.health.view().find((v) => v.region === 'eu-west-1')?.status, 'down');
    eu.healthy = true;
    await waitFor('eu-west-1 to come back', async () =>
      (await ask())[0] === '127.0.2.1' ? true : undefined,
    );
  });
});

describe('GeoDNS truncation and multivalue', () => {
  const many = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`);
  const fx = dnsFixture({ multivalue: 22, addresses: { 'us-east-1': many } });

  it('sets TC over UDP past 512 bytes and dig falls back to TCP for the full answer', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const truncated = await dig(fx.server.port, [
      '+noedns',
      '+ignore',
      'app.meridian.test',
      'A',
      '-b',
      '127.0.1.9',
    ]);
    assert.ok(flags(truncated).includes('tc'), truncated);
    assert.match(truncated, /ANSWER: 0,/);
    const full = await dig(fx.server.port, ['+noedns', 'app.meridian.test', 'A', '-b', '127.0.1.9']);
    assert.match(full, /Truncated, retrying in TCP mode/);
    const answers = [...full.matchAll(/IN\s+A\s+([\d.]+)/g)].map((m) => m[1]);
    assert.deepEqual(answers, [...many, '127.0.2.1', '127.0.3.1'], 'nearest region first, then the others');
    assert.match(full, /\(TCP\)/);
  });

  it('fits the same answer in one UDP datagram with EDNS (1232 bytes)', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const out = await dig(fx.server.port, ['app.meridian.test', 'A', '-b', '127.0.1.9']);
    assert.ok(!flags(out).includes('tc'));
    assert.match(out, /ANSWER: 22,/);
    assert.match(out, /\(UDP\)/);
  });
});

describe("GeoDNS with Node's resolver", () => {
  const fx = dnsFixture();

  it('resolves A, SOA and NS, and reports NXDOMAIN, NODATA and REFUSED as errors', async () => {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${fx.server.port}`]);
    // 127.0.0.1 has no override and no mmdb entry: the first region in config order.
    assert.deepEqual(await resolver.resolve4('app.meridian.test'), ['127.0.1.1']);
    const withTtl = await resolver.resolve4('app.meridian.test', { ttl: true });
    assert.equal(withTtl[0]?.ttl, 60);
    const soa = await resolver.resolveSoa('meridian.test');
    assert.equal(soa.nsname, 'ns1.meridian.test');
    assert.equal(soa.hostmaster, 'hostmaster.meridian.test');
    assert.deepEqual(await resolver.resolveNs('meridian.test'), ['ns1.meridian.test']);
    await assert.rejects(resolver.resolve4('nope.meridian.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolveMx('app.meridian.test'), { code: 'ENODATA' });
    await assert.rejects(resolver.resolve4('example.com'), { code: 'EREFUSED' });
  });

  it('bound to a region loopback address, gets that region', async () => {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setLocalAddress('127.0.3.7');
    resolver.setServers([`127.0.0.1:${fx.server.port}`]);
    assert.deepEqual(await resolver.resolve4('app.meridian.test'), ['127.0.3.1']);
  });
});

describe('meridian dns (the command)', () => {
  it('starts from a config file, answers, and stops cleanly on SIGTERM', async (t) => {
    if (!needTool(t, 'dig', 'dnsutils')) return;
    const edges = await startEdges();
    try {
      const dir = mkdtempSync(join(tmpdir(), 'meridian-dns-'));
      const file = join(dir, 'config.json');
      const cfg = dnsConfig(edges);
      writeFileSync(file, JSON.stringify(cfg));
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', 'dns', '--config', file, '--port', '0'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const port = await waitFor(
        'the command to print its port',
        async () => {
          const m = / on 127\.0\.0\.1:(\d+) \(udp\+tcp\)/.exec(err);
          return m ? Number(m[1]) : undefined;
        },
        15_000,
      );
      assert.deepEqual(
        await digShort(port, ['app.meridian.test', 'A', `+subnet=${SUBNET_NEAR['ap-northeast-1']}`]),
        ['127.0.3.1'],
      );
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, err);
      assert.match(err, /stopping after 1 udp \+ 0 tcp queries/);
    } finally {
      await Promise.all(edges.map((e) => e.close()));
    }
  });
});
