/**
 * The fuzzing suite's servers: two region nodes as processes (test/support/cluster.ts) and an edge
 * for the first as a `meridian edge` process, each wrapped as an HttpTarget with its liveness, its
 * output and a canary client (writes that must be answered and must replicate to the other region).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { projectRoot } from '../src/adapters/region-table.js';
import type { HttpTarget } from './fuzz-support.js';
import { startCluster } from './support/cluster.js';

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
 * Another client's writes during a run, through `writeUrl`, must each be answered 200, and the
 * last must reach `readUrl`'s region: a case that breaks the batch or the replication stream
 * (issue 10 rows 2 and 3) fails the run even when every fuzz answer looked fine.
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

export interface FuzzTargets {
  region: HttpTarget;
  edge: HttpTarget;
  stop(): Promise<void>;
}

/** @example const t = await startFuzzTargets(); await fuzzHttp(t.region, ref, budget); await t.stop(); */
export async function startFuzzTargets(): Promise<FuzzTargets> {
  let edgeAddr = { host: '', port: 0 };
  const cluster = await startCluster({
    regions: ['us-east-1', 'eu-west-1'],
    configure: async (raw, { addresses }) => {
      const a = addresses['us-east-1'];
      if (!a) throw new Error('no address for us-east-1');
      edgeAddr = { host: a.host, port: await freePort(a.host) };
      const r = raw.regions[0];
      if (r) r.edge = { listen: edgeAddr, url: `http://${edgeAddr.host}:${edgeAddr.port}` };
    },
  });
  const edgeOut: string[] = [];
  let edge: ChildProcess | undefined;
  const stop = async () => {
    if (edge && edge.exitCode === null && edge.signalCode === null) {
      const child = edge;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await cluster.stop();
  };
  try {
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
  } catch (e) {
    await stop();
    throw e;
  }
  const nodeUrl = new URL(cluster.url('us-east-1'));
  const edgeUrl = `http://${edgeAddr.host}:${edgeAddr.port}`;
  return {
    region: {
      name: 'region',
      host: nodeUrl.hostname,
      port: Number(nodeUrl.port),
      alive: () => cluster.running('us-east-1'),
      output: () => cluster.output('us-east-1'),
      ...canaries(cluster.url('us-east-1'), cluster.url('eu-west-1'), 'region'),
    },
    edge: {
      name: 'edge',
      host: edgeAddr.host,
      port: edgeAddr.port,
      alive: () => edge?.exitCode === null && edge.signalCode === null,
      output: () => edgeOut.join(''),
      ...canaries(edgeUrl, cluster.url('eu-west-1'), 'edge'),
    },
    stop,
  };
}
