/**
 * Helpers of the edge tests: an edge over a test cluster's config, a cookie jar, requests through
 * the edge, an event recorder, and stand-in region nodes for the few tests that must control
 * exactly what a region answers (5xx); the behavioural tests run against real region nodes.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { MeridianConfig } from '../src/adapters/config.js';
import { parseRoute } from '../src/core/routing/index.js';
import { type Edge, type EdgeEvent, type EdgeOptions, startEdge } from '../src/servers/edge/index.js';

export interface FakeRegion {
  id: string;
  url: string;
  /** Requests received on /v1, in order. */
  hits: { method: string; path: string; headers: IncomingMessage['headers']; body: string }[];
  /** Answer /v1 with this status from now on (undefined: 200). */
  failWith: number | undefined;
  healthStatus: number;
  close(): Promise<void>;
}

export async function startFakeRegion(id: string, host = '127.0.0.1', port = 0): Promise<FakeRegion> {
  const fake: FakeRegion = {
    id,
    url: '',
    hits: [],
    failWith: undefined,
    healthStatus: 200,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/healthz') {
        res.writeHead(fake.healthStatus, { 'content-type': 'application/json', 'meridian-region': id });
        res.end(JSON.stringify({ region: id, status: fake.healthStatus === 200 ? 'ok' : 'failed' }));
        return;
      }
      fake.hits.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const status = fake.failWith ?? 200;
      res.writeHead(status, { 'content-type': 'application/json', 'meridian-region': id });
      res.end(JSON.stringify({ region: id }));
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  const addr = server.address() as AddressInfo;
  fake.url = `http://${host}:${addr.port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return fake;
}

// ---------------------------------------------------------------- edges over a test cluster

/** An edge for `edgeId` over `cfg`, with the `edge` section overridden, listening on a free port. */
export async function edgeOver(
  cfg: MeridianConfig,
  edge: Partial<MeridianConfig['edge']>,
  extra: Partial<EdgeOptions> & { edgeId?: string; routes?: Record<string, string> } = {},
): Promise<Edge> {
  const edgeId = extra.edgeId ?? 'us-east-1';
  const config: MeridianConfig = {
    ...cfg,
    edge: { ...cfg.edge, ...edge, health: { ...cfg.edge.health, ...(edge.health ?? {}) } },
    regions: cfg.regions.map((r) => (r.id === edgeId && extra.routes ? { ...r, routes: extra.routes } : r)),
  };
  const { routes: _routes, edgeId: _id, ...options } = extra;
  return startEdge({ config, edgeId, listen: { host: '127.0.0.1', port: 0 }, ...options });
}

/** A cookie jar for one client: keeps what Set-Cookie sets (Max-Age=0 deletes). */
export class CookieJar {
  readonly cookies = new Map<string, string>();

  take(setCookie: string | string[] | undefined): void {
    for (const line of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      if (attrs.some((a) => a.trim().toLowerCase() === 'max-age=0')) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(eq + 1).trim());
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

export interface EdgeAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
  route: { policy: string; region: string; reason: string } | undefined;
}

/** One request through the edge; with a jar, sends its cookies and keeps the ones set. */
export async function viaEdge(
  edge: Edge,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  o: { body?: unknown; headers?: Record<string, string>; jar?: CookieJar } = {},
): Promise<EdgeAnswer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  if (o.jar && o.jar.cookies.size > 0) headers.cookie = o.jar.header();
  const res = await request(`${edge.url}${path}`, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.body.text();
  o.jar?.take(res.headers['set-cookie']);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return {
    status: res.statusCode,
    headers: res.headers,
    json,
    route: parseRoute(res.headers['meridian-route'] as string | undefined),
  };
}

/** Records the edge's dispatches and health transitions, for asserting where requests went. */
export function recordEvents(edge: Edge): { events: EdgeEvent[]; dispatches(region?: string): EdgeEvent[] } {
  const events: EdgeEvent[] = [];
  edge.on((e) => events.push(e));
  return {
    events,
    dispatches: (region) =>
      events.filter((e) => e.kind === 'dispatch' && (region === undefined || e.region === region)),
  };
}
