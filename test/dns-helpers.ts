/**
 * Shared pieces of the GeoDNS tests: a config with three lab regions, stand-in edges whose /healthz
 * can be flipped, dig, and a bounded wait.
 */
import { execFile } from 'node:child_process';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import { type MeridianConfig, parseConfig } from '../src/adapters/config.js';
import { type DnsServer, startDnsServer } from '../src/servers/dns/index.js';

const run = promisify(execFile);

export const REGIONS = [
  { id: 'us-east-1', lat: 38.9, lon: -77.0, k: 1 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3, k: 2 },
  { id: 'ap-northeast-1', lat: 35.7, lon: 139.7, k: 3 },
] as const;

/** Client subnets the bundled CC0 database places near each region (US, GB, JP allocations). */
export const SUBNET_NEAR: Record<string, string> = {
  'us-east-1': '8.8.8.0/24',
  'eu-west-1': '81.2.69.0/24',
  'ap-northeast-1': '133.11.0.0/16',
};

export interface FakeEdge {
  region: string;
  url: string;
  healthy: boolean;
  close(): Promise<void>;
}

/** A stand-in for a region's edge: GET /healthz answers 200 while `healthy`, else 503. */
export async function fakeEdge(region: string, host: string): Promise<FakeEdge> {
  const app: FastifyInstance = Fastify({ logger: false });
  const edge = { region, url: '', healthy: true, close: () => app.close() };
  app.get('/healthz', async (_req, reply) =>
    edge.healthy ? { region, status: 'ok' } : reply.code(503).send({ region, status: 'draining' }),
  );
  await app.listen({ host, port: 0 });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  edge.url = `http://${host}:${addr.port}`;
  return edge;
}

/** The lab's three regions with an edge each; the lab's 127.0.k.0/24 placed at region k. */
export function dnsConfig(edges: FakeEdge[], dns: Record<string, unknown> = {}): MeridianConfig {
  return parseConfig({
    secrets: { clusterSecret: 'c'.repeat(16), adminToken: 'a'.repeat(16) },
    regions: REGIONS.map((r, i) => ({
      id: r.id,
      lat: r.lat,
      lon: r.lon,
      node: { listen: { host: `127.0.${r.k}.1`, port: 7070 }, url: `http://127.0.${r.k}.1:7070` },
      edge: {
        listen: { host: `127.0.${r.k}.1`, port: 8080 },
        url: edges[i]?.url ?? `http://127.0.${r.k}.1:8080`,
      },
    })),
    edge: { health: { intervalMs: 50, timeoutMs: 200, fall: 2, rise: 1 } },
    geoip: {
      overrides: REGIONS.map((r) => ({ cidr: `127.0.${r.k}.0/24`, lat: r.lat + 0.5, lon: r.lon + 0.5 })),
    },
    dns: { listen: { host: '127.0.0.1', port: 0 }, ...dns },
  });
}

export async function startEdges(): Promise<FakeEdge[]> {
  return Promise.all(REGIONS.map((r) => fakeEdge(r.id, `127.0.${r.k}.1`)));
}

/** Runs dig against the server; returns its stdout. */
export async function dig(port: number, args: string[]): Promise<string> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args], {
    timeout: 10_000,
  });
  return stdout;
}

/** `dig +short`: the answer lines. */
export async function digShort(port: number, args: string[]): Promise<string[]> {
  return (await dig(port, [...args, '+short'])).split('\n').filter((l) => l.trim() !== '');
}

export function status(digOut: string): string | undefined {
  return /status: ([A-Z]+)/.exec(digOut)?.[1];
}

export function flags(digOut: string): string[] {
  return (/;; flags: ([a-z ]+);/.exec(digOut)?.[1] ?? '').trim().split(/\s+/);
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Stand-in edges and a GeoDNS server for one describe block, started in its `before` and closed in
 * its `after`; read the fields inside tests.
 * @example const fx = dnsFixture(); it('answers', async () => dig(fx.server.port, ['app.meridian.test']));
 */
export function dnsFixture(dns: Record<string, unknown> = {}): { edges: FakeEdge[]; server: DnsServer } {
  const fx = { edges: [] as FakeEdge[] } as { edges: FakeEdge[]; server: DnsServer };
  before(async () => {
    fx.edges = await startEdges();
    fx.server = await startDnsServer(dnsConfig(fx.edges, dns));
  });
  after(async () => {
    await fx.server?.close();
    await Promise.all(fx.edges.map((e) => e.close()));
  });
  return fx;
}
