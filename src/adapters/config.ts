/**
 * The deployment configuration shared by region nodes, edges, the GeoDNS server and the lab:
 * one JSON or YAML file, validated with errors that name the field and the fix.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { collectionProblems } from '../core/collection.js';
import type { CollectionSpec, RegionInfo } from '../core/types.js';

const regionId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lowercase letters, digits and dashes, like us-east-1');
const url = z.url({ message: 'must be an absolute URL such as http://127.0.1.1:7070' });
const listen = z.object({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

const replication = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('async') }),
  z.object({
    mode: z.literal('sync'),
    acks: z.union([z.literal('all'), z.literal('majority'), z.number().int().min(1)]).default('majority'),
    timeoutMs: z.number().int().positive().optional(),
  }),
]);

const collection = z.object({
  name: z.string(),
  policy: z.enum(['pinned', 'lww', 'counter', 'set']),
  replication: replication.default({ mode: 'async' }),
  residency: z.array(regionId).optional(),
  /** `sagas`: /v1 clients may only read it; only the saga engine writes (403 read_only). */
  writableBy: z.enum(['clients', 'sagas']).optional(),
});

const region = z.object({
  id: regionId,
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  /** The region node: where it listens, and the URL others use when no route overrides it. */
  node: z.object({ listen, url }),
  /** The region's edge (absent: no edge in this region). */
  edge: z.object({ listen, url }).optional(),
  /**
   * How this region reaches other regions' nodes, when not directly at their `node.url` (the lab
   * points these at the WAN emulator's proxies): peer region id -> URL.
   */
  routes: z.record(regionId, url).default({}),
});

/**
 * Health checks of the edges and the GeoDNS server (docs/routing.md, "Health model"). Probe
 * deadlines follow each path's measured RTT: srtt + max(granularityMs, 4·rttvar) within
 * [minTimeoutMs, maxTimeoutMs]; `timeoutMs` (or `initialRttMs`) serves until the first sample.
 */
const health = z.object({
  intervalMs: z.number().int().positive().default(250),
  timeoutMs: z.number().int().positive().default(1000),
  fall: z.number().int().positive().default(2),
  rise: z.number().int().positive().default(2),
  /** The rest default in core/health.ts (DEFAULT_HEALTH), so a config may name only the above. */
  initialRttMs: z.number().int().positive().optional(),
  granularityMs: z.number().int().nonnegative().optional(),
  minTimeoutMs: z.number().int().positive().optional(),
  maxTimeoutMs: z.number().int().positive().optional(),
  stallMs: z.number().int().positive().optional(),
  passiveFall: z.number().int().positive().optional(),
  /** Share of the regions one edge may hold down at once (at least one). */
  maxEjectedShare: z.number().min(0).max(1).optional(),
  /** GeoDNS: vantage points (its own probes and each edge's view) that must agree a region is down. */
  quorum: z.number().int().positive().optional(),
});

const geoOverride = z.object({
  cidr: z.string(),
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
});

/** What one client may send the edge, and how long it may take. */
const edgeClient = z.object({
  /** Time from the first byte of a request head to its end (408 after). */
  headTimeoutMs: z.number().int().positive().default(10_000),
  /** Time from the end of a request head to the end of its body (408 after). */
  bodyTimeoutMs: z.number().int().positive().default(30_000),
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: z.number().int().positive().default(65_000),
  /** The whole request head: request line and header lines (431). */
  maxHeadBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 1024),
  /** One header line, or the request line (431; 414 for the request line). */
  maxHeaderLineBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024),
  /** Header lines in one request head (431). */
  maxHeaderCount: z.number().int().positive().default(100),
  /** A chunk-size line with its extensions, and the trailer section (400). */
  maxChunkLineBytes: z.number().int().positive().default(4096),
  /** Open connections from one client address; more are closed at once. */
  maxConnectionsPerClient: z.number().int().positive().default(256),
  /** Open client connections in all; more are closed at once. */
  maxConnections: z.number().int().positive().default(10_000),
});
// zod 4 does not parse a default through its schema: the object's default spells every field.
const EDGE_CLIENT_DEFAULTS: z.output<typeof edgeClient> = edgeClient.parse({});

const edge = z.object({
  policy: z.enum(['latency', 'geo', 'weighted', 'failover']).default('latency'),
  /** weighted: region -> relative weight. */
  weights: z.record(regionId, z.number().nonnegative()).default({}),
  /** failover: regions in priority order. */
  priority: z.array(regionId).default([]),
  health: health.default({ intervalMs: 250, timeoutMs: 1000, fall: 2, rise: 2 }),
  /** How long reads stick to the region of a client's last write. */
  stickyMs: z.number().int().nonnegative().default(10_000),
  maxBodyBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /**
   * Longest `Meridian-Max-Wait-Ms` the edge forwards: its upstream budget for such a read is the
   * ask plus `upstream.headersTimeoutMs`; a larger ask is refused with 400 before it is sent.
   */
  maxWaitMs: z.number().int().nonnegative().default(60_000),
  /** Limits on what clients send to the edge (docs/limits.md, "Edge router (HTTP)"). */
  client: edgeClient.default(EDGE_CLIENT_DEFAULTS),
});

const geoip = z.object({
  /** An mmdb file (GeoLite2-City shape or a country database); default: the bundled CC0 database. */
  mmdb: z.string().optional(),
  overrides: z.array(geoOverride).default([]),
});

const dns = z.object({
  listen: listen.default({ host: '127.0.0.1', port: 5353 }),
  zone: z.string().default('meridian.test'),
  /** Names (relative to the zone) answered with the nearest healthy edge. */
  names: z.array(z.string()).default(['app']),
  ttl: z.number().int().nonnegative().default(60),
  /** Answer with up to this many healthy edges, nearest first. */
  multivalue: z.number().int().positive().default(1),
  /** Per region, the address(es) answered for it (default: the host of its edge URL). */
  addresses: z.record(regionId, z.array(z.string())).default({}),
});

const store = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('memory') }),
  z.object({
    kind: z.literal('sqlite'),
    dir: z.string().default('.meridian/data'),
    /** normal: survives a killed process; full: also a power cut (one fsync per group commit). */
    synchronous: z.enum(['normal', 'full']).default('normal'),
  }),
  z.object({
    kind: z.literal('postgres'),
    url: z.string().default('postgres://postgres@127.0.0.1:5432/postgres'),
    /** Each region gets its own schema named <prefix><region id with '-' as '_'>. */
    schemaPrefix: z.string().default('meridian_'),
  }),
]);

/** What one request may send a region node, and how long it may take to send it. */
const nodeLimits = z.object({
  /** Nesting of arrays and objects in a JSON body (400 too_deep). */
  maxJsonDepth: z.number().int().min(1).max(1000).default(64),
  /** Members of one JSON object (413 too_large). */
  maxObjectKeys: z.number().int().positive().default(1000),
  /** Elements of one JSON array (413 too_large). */
  maxArrayLength: z.number().int().positive().default(10_000),
  /** UTF-16 code units of one JSON string, member names included (413 too_large). */
  maxStringLength: z
    .number()
    .int()
    .positive()
    .default(256 * 1024),
  /** The request line and headers together (431 headers_too_large). */
  maxHeaderBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 1024),
  /** From a connection's first byte of a request to the end of its head (408 request_timeout). */
  headersTimeoutMs: z.number().int().positive().default(10_000),
  /** From the first byte of a request to the end of its body (408 request_timeout). */
  requestTimeoutMs: z.number().int().positive().default(30_000),
});
// zod 4 does not parse a default through its schema: the object's default spells every field.
const NODE_LIMITS_DEFAULTS: z.output<typeof nodeLimits> = nodeLimits.parse({});

/** Region-to-region streams and change-log retention of region nodes. */
const replicationSettings = z.object({
  /** A stream sends a heartbeat this often; a receiver that hears nothing for 3x this reconnects. */
  heartbeatMs: z.number().int().positive().default(1000),
  /** Reconnection backoff: doubles from min to max, with full jitter. */
  reconnectMinMs: z.number().int().positive().default(100),
  reconnectMaxMs: z.number().int().positive().default(5000),
  /** Changes per origin kept in the log even when every peer has acknowledged them. */
  logKeep: z.number().int().nonnegative().default(1000),
  /** Changes per origin kept at most: beyond this a lagging peer gets a snapshot instead. */
  logMaxRetain: z.number().int().positive().default(100_000),
  compactIntervalMs: z.number().int().positive().default(10_000),
});

export const configSchema = z.object({
  cluster: z
    .object({
      name: z.string().default('meridian'),
      mode: z.enum(['active-active', 'active-passive']).default('active-active'),
      /** active-passive: the region that takes writes first. */
      primary: regionId.optional(),
    })
    .default({ name: 'meridian', mode: 'active-active' }),
  secrets: z.object({
    /** Authenticates region-to-region routes (Authorization: Bearer <clusterSecret>). */
    clusterSecret: z.string().min(16, 'use at least 16 characters'),
    /** Authenticates admin routes. */
    adminToken: z.string().min(16, 'use at least 16 characters'),
  }),
  regions: z.array(region).min(1),
  collections: z.array(collection).default([]),
  store: store.default({ kind: 'sqlite', dir: '.meridian/data', synchronous: 'normal' }),
  edge: edge.default({
    policy: 'latency',
    weights: {},
    priority: [],
    health: { intervalMs: 250, timeoutMs: 1000, fall: 2, rise: 2 },
    stickyMs: 10_000,
    maxBodyBytes: 1024 * 1024,
    maxWaitMs: 60_000,
    client: EDGE_CLIENT_DEFAULTS,
  }),
  geoip: geoip.default({ overrides: [] }),
  dns: dns.default({
    listen: { host: '127.0.0.1', port: 5353 },
    zone: 'meridian.test',
    names: ['app'],
    ttl: 60,
    multivalue: 1,
    addresses: {},
  }),
  replication: replicationSettings.default({
    heartbeatMs: 1000,
    reconnectMinMs: 100,
    reconnectMaxMs: 5000,
    logKeep: 1000,
    logMaxRetain: 100_000,
    compactIntervalMs: 10_000,
  }),
  /** Per-request limits and timeouts of region nodes. */
  node: z
    .object({
      maxBodyBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
      /** Default and longest wait for Meridian-Min-Version; a larger Meridian-Max-Wait-Ms is clamped to it. */
      maxWaitMs: z.number().int().nonnegative().default(1000),
      syncTimeoutMs: z.number().int().positive().default(2000),
      maxOffsetMs: z.number().int().positive().default(500),
      idempotencyTtlMs: z
        .number()
        .int()
        .positive()
        .default(24 * 3600 * 1000),
      /** Limits on a request to the node (docs/limits.md, "Region node (HTTP)"). */
      limits: nodeLimits.default(NODE_LIMITS_DEFAULTS),
      /** Balance of an account opened with POST /v1/accounts/{key}/open. */
      accountOpeningBalance: z.number().int().nonnegative().default(1000),
    })
    .default({
      maxBodyBytes: 1024 * 1024,
      maxWaitMs: 1000,
      syncTimeoutMs: 2000,
      maxOffsetMs: 500,
      idempotencyTtlMs: 86_400_000,
      limits: NODE_LIMITS_DEFAULTS,
      accountOpeningBalance: 1000,
    }),
});

export type MeridianConfig = z.infer<typeof configSchema>;
export type RegionConfig = MeridianConfig['regions'][number];

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    source: string,
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config object; throws ConfigError listing every problem with its field path. */
export function parseConfig(raw: unknown, source = 'config'): MeridianConfig {
  const res = configSchema.safeParse(raw);
  if (!res.success) {
    throw new ConfigError(
      res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      source,
    );
  }
  const cfg = res.data;
  const ids = cfg.regions.map((r) => r.id);
  const problems: string[] = [];
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) problems.push(`regions: region '${dup}' is listed twice`);
  const names = cfg.collections.map((c) => c.name);
  const dupC = names.find((n, i) => names.indexOf(n) !== i);
  if (dupC) problems.push(`collections: collection '${dupC}' is listed twice`);
  for (const c of cfg.collections) problems.push(...collectionProblems(c as CollectionSpec, ids));
  for (const r of cfg.regions) {
    for (const peer of Object.keys(r.routes)) {
      if (!ids.includes(peer)) problems.push(`regions.${r.id}.routes: unknown region '${peer}'`);
    }
  }
  for (const r of [...Object.keys(cfg.edge.weights), ...cfg.edge.priority]) {
    if (!ids.includes(r)) problems.push(`edge: unknown region '${r}' in weights or priority`);
  }
  if (cfg.node.limits.headersTimeoutMs > cfg.node.limits.requestTimeoutMs) {
    problems.push('node.limits.headersTimeoutMs: must not be longer than node.limits.requestTimeoutMs');
  }
  if (cfg.cluster.primary && !ids.includes(cfg.cluster.primary)) {
    problems.push(`cluster.primary: unknown region '${cfg.cluster.primary}'`);
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  return cfg;
}

/** Reads a .json, .yaml or .yml file and validates it. */
export function loadConfig(path: string): MeridianConfig {
  const text = readFileSync(path, 'utf8');
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError([`cannot parse: ${(e as Error).message}`], path);
  }
  return parseConfig(raw, path);
}

export function regionInfos(cfg: MeridianConfig): RegionInfo[] {
  return cfg.regions.map((r) => ({ id: r.id, lat: r.lat, lon: r.lon }));
}

export function collectionSpecs(cfg: MeridianConfig): CollectionSpec[] {
  return cfg.collections as CollectionSpec[];
}

export function regionConfig(cfg: MeridianConfig, id: string): RegionConfig {
  const r = cfg.regions.find((x) => x.id === id);
  if (!r)
    throw new ConfigError(
      [`--region: '${id}' is not one of ${cfg.regions.map((x) => x.id).join(', ')}`],
      'arguments',
    );
  return r;
}

/** The URL region `from` uses to reach region `to`'s node (through the WAN emulator in the lab). */
export function nodeUrlFrom(cfg: MeridianConfig, from: string | undefined, to: string): string {
  const target = regionConfig(cfg, to);
  const via = from === undefined ? undefined : cfg.regions.find((r) => r.id === from)?.routes[to];
  return via ?? target.node.url;
}
