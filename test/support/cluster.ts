/**
 * Starts N real region nodes on loopback for tests and benchmarks: by default each in its own
 * process (`meridian region`), so kill -9 and restart are real. Each cluster gets its own random
 * loopback subnet (127.A.B.k, k = region index), so clusters of parallel tests never collide and a
 * restarted node comes back at the same address its peers know.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { request } from 'undici';
import { type MeridianConfig, parseConfig } from '../../src/adapters/config.js';
import type { LogLevel } from '../../src/adapters/logger.js';
import { regionSchema } from '../../src/adapters/postgres-store.js';
import { loadRegionTable, projectRoot } from '../../src/adapters/region-table.js';
import { homeOfNewKey } from '../../src/core/collection.js';
import type { CollectionSpec } from '../../src/core/types.js';
import { RegionNode } from '../../src/servers/region/node.js';

export const LAB_REGIONS = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];

/** The lab's collections (DESIGN.md). */
export const LAB_COLLECTIONS = [
  { name: 'profiles', policy: 'pinned', replication: { mode: 'async' } },
  { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
  { name: 'likes', policy: 'counter', replication: { mode: 'async' } },
  { name: 'tags', policy: 'set', replication: { mode: 'async' } },
  { name: 'accounts', policy: 'pinned', replication: { mode: 'sync', acks: 'majority' } },
  { name: 'eu-profiles', policy: 'pinned', replication: { mode: 'async' }, residency: ['eu-west-1'] },
];

/**
 * The first key `${prefix}${i}` (or `prefix` itself) of a lab collection whose home is `region`:
 * a new pinned key's home is the rule every region applies (homeOfNewKey), not where it is sent.
 */
export function keyHomedIn(
  collection: string,
  region: string,
  prefix: string,
  regions = LAB_REGIONS,
): string {
  const spec = LAB_COLLECTIONS.find((c) => c.name === collection) as CollectionSpec;
  if (homeOfNewKey(spec, regions, prefix) === region) return prefix;
  for (let i = 1; ; i++) if (homeOfNewKey(spec, regions, `${prefix}${i}`) === region) return `${prefix}${i}`;
}

export type StoreKind = 'memory' | 'sqlite' | 'postgres';

export const PG_URL = process.env.MERIDIAN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The config as written to disk, before validation fills in defaults. */
export type RawConfig = Record<string, unknown> & {
  regions: (Record<string, unknown> & { id: string; routes?: Record<string, string> })[];
  collections: unknown[];
  node?: Record<string, unknown>;
  replication?: Record<string, unknown>;
};

export interface ClusterOptions {
  /** Region ids, in address order (default: the lab's three). */
  regions?: string[];
  /** Default sqlite. */
  store?: StoreKind;
  /** Default: the lab's collections. */
  collections?: unknown[];
  /** Merged into the config's `node` section (maxBodyBytes, syncTimeoutMs, ...). */
  node?: Record<string, unknown>;
  /** Merged into the config's `replication` section (heartbeatMs, logKeep, ...). */
  replication?: Record<string, unknown>;
  /**
   * Last edit of the raw config, knowing where each node will listen: e.g. route region-to-region
   * traffic through a WAN emulator by setting `regions[i].routes`.
   */
  configure?: (raw: RawConfig, info: { addresses: Record<string, HostPort> }) => void | Promise<void>;
  /** `process` (default): one `meridian region` child per region. `inprocess`: nodes in this process. */
  mode?: 'process' | 'inprocess';
  /** Default: $MERIDIAN_LOG_LEVEL, else `warn` (children's output is kept for failure messages). */
  logLevel?: LogLevel;
  port?: number;
  readyTimeoutMs?: number;
  /** Process mode: extra environment of a region's process, read at each (re)start (e.g. MERIDIAN_CLOCK_SKEW_MS). */
  env?: (region: string) => Record<string, string>;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface Cluster {
  regions: string[];
  /** Base URL of each region's node. */
  urls: Record<string, string>;
  cfg: MeridianConfig;
  configPath: string;
  /** Temporary folder with the config and SQLite files; removed by stop(). */
  dir: string;
  url(region: string): string;
  /** Sends a signal (default SIGKILL) and waits until the node is gone. */
  kill(region: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped node again (same address, same store) and waits until /healthz answers 200. */
  restart(region: string): Promise<void>;
  running(region: string): boolean;
  /** Process mode: how the region's last process ended (undefined while it runs). */
  exitStatus(region: string): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The last output of a region's process (process mode), for failure messages. */
  output(region: string): string;
  /** In-process mode: the node object. */
  node(region: string): RegionNode | undefined;
  /** Stops every node (SIGTERM, then SIGKILL after a few seconds), drops PostgreSQL schemas, removes files. */
  stop(): Promise<void>;
}

interface Member {
  id: string;
  address: HostPort;
  child?: ChildProcess;
  exited?: Promise<void>;
  node?: RegionNode;
  out: string[];
}

const OUTPUT_LINES = 200;

/** Children still running, killed if the test process exits without stopping its clusters. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const ch of live) ch.kill('SIGKILL');
});

/** Whether `host:port` can be bound right now. */
function canBind(a: HostPort): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(a.port, a.host, () => s.close(() => resolve(true)));
  });
}

/** A random loopback /24 outside 127.0.x.x (the lab's plan), with every region's address free. */
async function pickAddresses(regions: string[], port: number): Promise<Record<string, HostPort>> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = `127.${randomInt(100, 255)}.${randomInt(0, 256)}`;
    const addrs = Object.fromEntries(regions.map((id, i) => [id, { host: `${base}.${i + 1}`, port }]));
    const free = await Promise.all(Object.values(addrs).map(canBind));
    if (free.every(Boolean)) return addrs;
  }
  throw new Error('could not find a free loopback subnet for the cluster');
}

async function dropSchemas(prefix: string, regions: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    for (const r of regions) await client.query(`DROP SCHEMA IF EXISTS "${regionSchema(prefix, r)}" CASCADE`);
  } finally {
    await client.end();
  }
}

async function waitHealthy(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`node at ${url} exited while starting`);
    try {
      const res = await request(`${url}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
      last = `status ${res.statusCode}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`node at ${url} not healthy after ${timeoutMs} ms (${last})`);
}

/**
 * @example
 *   const c = await startCluster({ store: 'sqlite' });
 *   try {
 *     await fetch(`${c.urls['us-east-1']}/v1/settings/a`, { method: 'PUT', body: '1', headers: {'content-type': 'application/json'} });
 *     await c.kill('us-east-1');   // SIGKILL
 *     await c.restart('us-east-1');
 *   } finally { await c.stop(); }
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const regions = options.regions ?? LAB_REGIONS;
  const mode = options.mode ?? 'process';
  const storeKind = options.store ?? 'sqlite';
  const logLevel = options.logLevel ?? (process.env.MERIDIAN_LOG_LEVEL as LogLevel | undefined) ?? 'warn';
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const addresses = await pickAddresses(regions, options.port ?? 7070);
  const dir = mkdtempSync(join(tmpdir(), 'meridian-cluster-'));
  const table = loadRegionTable();
  const pgPrefix = `meridian_t${randomBytes(4).toString('hex')}_`;
  const store =
    storeKind === 'memory'
      ? { kind: 'memory' }
      : storeKind === 'sqlite'
        ? { kind: 'sqlite', dir: join(dir, 'data') }
        : { kind: 'postgres', url: PG_URL, schemaPrefix: pgPrefix };
  const raw: RawConfig = {
    cluster: { name: 'test', mode: 'active-active' },
    secrets: {
      clusterSecret: randomBytes(24).toString('base64url'),
      adminToken: randomBytes(24).toString('base64url'),
    },
    regions: regions.map((id) => {
      const t = table.get(id);
      const a = addresses[id]!;
      return {
        id,
        lat: t.lat,
        lon: t.lon,
        node: { listen: a, url: `http://${a.host}:${a.port}` },
        routes: {},
      };
    }),
    // The lab's resident collection only where its region is part of the cluster.
    collections:
      options.collections ??
      LAB_COLLECTIONS.filter((col) => !col.residency || col.residency.every((r) => regions.includes(r))),
    store,
    node: { ...(options.node ?? {}) },
    replication: {
      heartbeatMs: 500,
      reconnectMinMs: 50,
      reconnectMaxMs: 1000,
      ...(options.replication ?? {}),
    },
  };
  await options.configure?.(raw, { addresses });
  const cfg = parseConfig(raw, 'test cluster');
  const configPath = join(dir, 'meridian.json');
  writeFileSync(configPath, JSON.stringify(raw, null, 2));

  const members = new Map<string, Member>(
    regions.map((id) => [id, { id, address: addresses[id]!, out: [] } satisfies Member]),
  );
  const urls = Object.fromEntries(
    regions.map((id) => [id, `http://${addresses[id]!.host}:${addresses[id]!.port}`]),
  );
  const root = projectRoot();

  const get = (region: string): Member => {
    const m = members.get(region);
    if (!m) throw new Error(`no region '${region}' in this cluster (${regions.join(', ')})`);
    return m;
  };

  const isRunning = (m: Member): boolean =>
    mode === 'inprocess'
      ? m.node !== undefined
      : m.child !== undefined && m.child.exitCode === null && m.child.signalCode === null;

  async function launch(m: Member): Promise<void> {
    if (mode === 'inprocess') {
      m.node = await RegionNode.start({ cfg, region: m.id, logLevel });
      return;
    }
    const child = spawn(
      process.execPath,
      [
        // MERIDIAN_NODE_FLAGS: extra Node flags for the region processes (profiling: --cpu-prof).
        ...(process.env.MERIDIAN_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        '--import',
        'tsx',
        join(root, 'src/cli/main.ts'),
        'region',
        '--config',
        configPath,
        '--region',
        m.id,
      ],
      {
        cwd: root,
        env: { ...process.env, MERIDIAN_LOG_LEVEL: logLevel, NODE_TEST_CONTEXT: '', ...options.env?.(m.id) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line) m.out.push(line);
      if (m.out.length > OUTPUT_LINES) m.out.splice(0, m.out.length - OUTPUT_LINES);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    m.child = child;
    live.add(child);
    m.exited = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        resolve();
      }),
    );
    try {
      await waitHealthy(urls[m.id]!, readyTimeoutMs, () => isRunning(m));
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- ${m.id} output ---\n${m.out.join('\n')}`);
    }
  }

  async function kill(region: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = get(region);
    if (mode === 'inprocess') {
      // No real kill in one process: close the node (its store keeps what it committed).
      await m.node?.drain();
      m.node = undefined;
      return;
    }
    if (!isRunning(m)) return;
    m.child!.kill(signal);
    await m.exited;
  }

  const cluster: Cluster = {
    regions,
    urls,
    cfg,
    configPath,
    dir,
    url: (region) => {
      get(region);
      return urls[region]!;
    },
    kill,
    restart: async (region) => {
      const m = get(region);
      if (isRunning(m)) throw new Error(`${region} is still running; kill it first`);
      await launch(m);
    },
    running: (region) => isRunning(get(region)),
    exitStatus: (region) => {
      const ch = get(region).child;
      if (!ch || (ch.exitCode === null && ch.signalCode === null)) return undefined;
      return { code: ch.exitCode, signal: ch.signalCode };
    },
    output: (region) => get(region).out.join('\n'),
    node: (region) => get(region).node,
    stop: async () => {
      await Promise.all(
        [...members.values()].map(async (m) => {
          if (!isRunning(m)) return;
          if (mode === 'inprocess') {
            await m.node?.drain();
            m.node = undefined;
            return;
          }
          const force = setTimeout(() => m.child?.kill('SIGKILL'), 5000);
          m.child!.kill('SIGTERM');
          await m.exited;
          clearTimeout(force);
        }),
      );
      if (storeKind === 'postgres') await dropSchemas(pgPrefix, regions).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all([...members.values()].map(launch));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

export interface CallResult {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON body (undefined when the body is not JSON). */
  json: unknown;
  text: string;
}

/**
 * One HTTP call with a JSON body (or a raw string/Buffer body as given).
 * @example const r = await call(c.url('us-east-1'), 'PUT', '/v1/settings/a', { body: { x: 1 } });
 */
export async function call(
  base: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH',
  path: string,
  o: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  let body: string | Buffer | undefined;
  if (o.raw !== undefined) body = o.raw;
  else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await request(`${base}${path}`, {
    method,
    headers,
    body,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers))
    if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : v;
  return { status: res.statusCode, headers: h, json, text };
}

/** Polls `check` until it returns a truthy value, or throws after `timeoutMs` with `what`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
  );
}
