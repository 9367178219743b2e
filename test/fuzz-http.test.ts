/**
 * The HTTP fuzzing suite: random and mutated requests (raw bytes, and structured requests from
 * fast-check) against a real region node and a real edge, each its own process, compared with what
 * Node's own parser accepts. Bounded by MERIDIAN_FUZZ_MS per target (default 20 s) and
 * MERIDIAN_FUZZ_COUNT; the seed is printed and MERIDIAN_FUZZ_SEED replays it. `npm run fuzz` runs
 * the same for longer. The oracle is in test/fuzz-support.ts; known open findings in fuzz-known.ts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { projectRoot } from '../src/adapters/region-table.js';
import { knownFinding } from './fuzz-known.js';
import {
  describeFindings,
  FUZZ_COUNT,
  FUZZ_MS,
  FUZZ_SEED,
  fuzzHttp,
  type HttpTarget,
  llhttpReference,
  type ParserReference,
} from './fuzz-support.js';
import { type Cluster, startCluster } from './support/cluster.js';

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Another client's writes during the run, through `writeUrl`, must each be answered 200, and the
 * last must reach `readUrl`'s region: a fuzz case that breaks the batch or the replication stream
 * (issue 10 rows 2 and 3) fails here even when every fuzz answer looked fine.
 */
function canaries(writeUrl: string, readUrl: string, name: string): Pick<HttpTarget, 'canary' | 'settle'> {
  let n = 0;
  const key = `/v1/settings/fuzz-canary-${name}`;
  return {
    canary: async () => {
      n++;
      try {
        const res = await request(`${writeUrl}${key}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ n }),
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        const text = await res.body.text();
        return res.statusCode === 200
          ? undefined
          : `another client's write answered ${res.statusCode}: ${text}`;
      } catch (e) {
        return `another client's write failed: ${(e as Error).message}`;
      }
    },
    settle: async () => {
      if (n === 0) return undefined;
      const end = Date.now() + 20_000;
      let last = '';
      while (Date.now() < end) {
        try {
          const res = await request(`${readUrl}${key}`, { headersTimeout: 5000, bodyTimeout: 5000 });
          last = await res.body.text();
          if (res.statusCode === 200 && (JSON.parse(last) as { value?: { n?: number } }).value?.n === n)
            return undefined;
        } catch (e) {
          last = (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      return `the last of ${n} canary writes did not replicate in 20 s (read: ${last.slice(0, 200)})`;
    },
  };
}

const budget = { seed: FUZZ_SEED, ms: FUZZ_MS, count: FUZZ_COUNT, known: knownFinding };

describe(`HTTP fuzzing (seed ${FUZZ_SEED}; MERIDIAN_FUZZ_SEED replays, ${FUZZ_MS} ms per target)`, () => {
  let cluster: Cluster;
  let ref: ParserReference;
  let edge: ChildProcess | undefined;
  const edgeOut: string[] = [];
  let edgeAddr = { host: '', port: 0 };

  before(async () => {
    ref = await llhttpReference();
    cluster = await startCluster({
      regions: ['us-east-1', 'eu-west-1'],
      configure: async (raw, { addresses }) => {
        const a = addresses['us-east-1'];
        if (!a) throw new Error('no address for us-east-1');
        edgeAddr = { host: a.host, port: await freePort(a.host) };
        const r = raw.regions[0];
        if (r) r.edge = { listen: edgeAddr, url: `http://${edgeAddr.host}:${edgeAddr.port}` };
      },
    });
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(projectRoot(), 'src/cli/main.ts'),
        'edge',
        '--config',
        cluster.configPath,
        '--edge',
        'us-east-1',
      ],
      {
        cwd: projectRoot(),
        env: { ...process.env, NODE_TEST_CONTEXT: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    edge = child;
    const keep = (d: Buffer) => {
      edgeOut.push(d.toString());
      if (edgeOut.length > 200) edgeOut.splice(0, edgeOut.length - 200);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const end = Date.now() + 30_000;
    while (!edgeOut.join('').includes('listening on')) {
      if (child.exitCode !== null) throw new Error(`the edge exited:\n${edgeOut.join('')}`);
      if (Date.now() > end) throw new Error(`the edge did not start in 30 s:\n${edgeOut.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (edge && edge.exitCode === null) {
      const gone = new Promise((r) => edge?.once('exit', r));
      edge.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (edge.exitCode === null) edge.kill('SIGKILL');
    }
    await cluster?.stop();
    await ref?.close();
  });

  it('a region node answers every request without a crash, a 5xx or accepting what llhttp rejects', async () => {
    const url = new URL(cluster.url('us-east-1'));
    const target: HttpTarget = {
      name: 'region',
      host: url.hostname,
      port: Number(url.port),
      alive: () => cluster.running('us-east-1'),
      output: () => cluster.output('us-east-1'),
      ...canaries(cluster.url('us-east-1'), cluster.url('eu-west-1'), 'region'),
    };
    const s = await fuzzHttp(target, ref, budget);
    process.stderr.write(
      `fuzz region: ${s.cases} cases in ${s.ms} ms, statuses ${JSON.stringify(s.statuses)}\n`,
    );
    assert.ok(s.cases > 0);
    assert.equal(s.findings.length, 0, describeFindings(s));
  });

  it('an edge answers every request without a crash, a 5xx or accepting what llhttp rejects', async () => {
    const target: HttpTarget = {
      name: 'edge',
      host: edgeAddr.host,
      port: edgeAddr.port,
      alive: () => edge?.exitCode === null && edge.signalCode === null,
      output: () => edgeOut.join(''),
      ...canaries(`http://${edgeAddr.host}:${edgeAddr.port}`, cluster.url('eu-west-1'), 'edge'),
    };
    const s = await fuzzHttp(target, ref, budget);
    process.stderr.write(
      `fuzz edge: ${s.cases} cases in ${s.ms} ms, statuses ${JSON.stringify(s.statuses)}\n`,
    );
    assert.ok(s.cases > 0);
    assert.equal(s.findings.length, 0, describeFindings(s));
  });
});
