/**
 * The deployment configuration shared by region nodes, edges, the GeoDNS server and the lab:
 * one JSON or YAML file, validated strictly (an unknown key is an error that names the closest
 * valid one) with errors that name the field and the fix. Secrets may be written inline or taken
 * from an environment variable or a file (`{env: NAME}`, `{file: PATH}`): docs/region-node.md,
 * "Config reference".
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { collectionProblems } from '../core/collection.js';
import type { CollectionSpec, RegionInfo } from '../core/types.js';

/** Edits (insert, delete, substitute) that turn `a` into `b`, ignoring case. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length]!;
}

/** The valid key closest to `key`, when it is close enough to be a typo of it. */
export function closestKey(key: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const v of valid) {
    const d = editDistance(key, v);
    if (d < bestD) [best, bestD] = [v, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * An object schema that refuses unknown keys. Its message has one line per unknown key, in the
 * order of the issue's `keys`, so parseConfig can name each key's path.
 */
function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const valid = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code !== 'unrecognized_keys') return undefined;
      return iss.keys
        .map((k) => {
          const near = closestKey(k, valid);
          return near
            ? `unknown key; did you mean \`${near}\`?`
            : `unknown key; valid keys here: ${valid.join(', ')}`;
        })
        .join('\n');
    },
  });
}

const regionId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lowercase letters, digits and dashes, like us-east-1');
const url = z.url({ message: 'must be an absolute URL such as http://127.0.1.1:7070' });
const listen = strict({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

const replication = z.discriminatedUnion('mode', [
  strict({ mode: z.literal('async') }),
  strict({
    mode: z.literal('sync'),
    acks: z.union([z.literal('all'), z.literal('majority'), z.number().int().min(1)]).default('majority'),
    timeoutMs: z.number().int().positive().optional(),
  }),
]);

const collection = strict({
  name: z.string(),
  policy: z.enum(['pinned', 'lww', 'counter', 'set']),
  replication: replication.default({ mode: 'async' }),
  residency: z.array(regionId).optional(),
  /** `sagas`: /v1 clients may only read it; only the saga engine writes (403 read_only). */
  writableBy: z.enum(['clients', 'sagas']).optional(),
});

const region = strict({
  id: regionId,
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  /** The region node: where it listens, and the URL others use when no route overrides it. */
  node: strict({ listen, url }),
  /** The region's edge (absent: no edge in this region). */
  edge: strict({ listen, url }).optional(),
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
const health = strict({
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

const geoOverride = strict({
  cidr: z.string(),
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
});

/** What one client may send the edge, and how long it may take. */
const edgeClient = strict({
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

const edge = strict({
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

const geoip = strict({
  /** An mmdb file (GeoLite2-City shape or a country database); default: the bundled CC0 database. */
  mmdb: z.string().optional(),
  overrides: z.array(geoOverride).default([]),
});

const dns = strict({
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
  strict({ kind: z.literal('memory') }),
  strict({
    kind: z.literal('sqlite'),
    dir: z.string().default('.meridian/data'),
    /** normal: survives a killed process; full: also a power cut (one fsync per group commit). */
    synchronous: z.enum(['normal', 'full']).default('normal'),
  }),
  strict({
    kind: z.literal('postgres'),
    url: z.string().default('postgres://postgres@127.0.0.1:5432/postgres'),
    /** Each region gets its own schema named <prefix><region id with '-' as '_'>. */
    schemaPrefix: z.string().default('meridian_'),
  }),
]);

/** What one request may send a region node, and how long it may take to send it. */
const nodeLimits = strict({
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
const replicationSettings = strict({
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

/**
 * A secret: the value itself, or where to read it, so the config file need not hold it:
 * `{env: NAME}` (an environment variable) or `{file: PATH}` (the file's content without its
 * trailing newline; a relative path is relative to the config file). Read once, at load.
 */
const secret = z.union(
  [
    z.string(),
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ],
  { error: 'must be a string, {env: VARIABLE} or {file: PATH}' },
);
export type SecretSource = z.infer<typeof secret>;

export const configSchema = strict({
  /**
   * Not read yet: issue 12 (active-passive) will use `mode` and `primary`; kept so configs written
   * for it (and the lab's) stay valid. Nodes, edges and GeoDNS run active-active whatever it says.
   */
  cluster: strict({
    name: z.string().default('meridian'),
    mode: z.enum(['active-active', 'active-passive']).default('active-active'),
    /** active-passive: the region that takes writes first. */
    primary: regionId.optional(),
  }).default({ name: 'meridian', mode: 'active-active' }),
  secrets: strict({
    /** Authenticates region-to-region routes (Authorization: Bearer <clusterSecret>). */
    clusterSecret: secret,
    /** The lab's API and dashboard (`meridian up`, `meridian chaos`); nodes, edges and GeoDNS do not read it. */
    adminToken: secret.optional(),
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
  node: strict({
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
  }).default({
    maxBodyBytes: 1024 * 1024,
    maxWaitMs: 1000,
    syncTimeoutMs: 2000,
    maxOffsetMs: 500,
    idempotencyTtlMs: 86_400_000,
    limits: NODE_LIMITS_DEFAULTS,
    accountOpeningBalance: 1000,
  }),
});

type ParsedConfig = z.infer<typeof configSchema>;
/** A validated config, with defaults filled in and secrets read from where they were. */
export type MeridianConfig = Omit<ParsedConfig, 'secrets'> & {
  secrets: { clusterSecret: string; adminToken?: string };
};
export type RegionConfig = MeridianConfig['regions'][number];

/** A config that cannot be used: every problem, each naming its field; `message` has one line per problem. */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly source: string,
  ) {
    super(problems.map((p) => `${source}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export interface ParseOptions {
  /** Where a relative `{file: PATH}` secret is found (default: the working directory). */
  baseDir?: string;
  /** Where `{env: NAME}` secrets are read (default: process.env). */
  env?: Record<string, string | undefined>;
}

const MIN_SECRET_CHARS = 16;

/** Reads one secret from where its source says; pushes a problem instead when it cannot. */
function readSecret(
  src: SecretSource,
  field: string,
  o: ParseOptions,
  problems: string[],
): string | undefined {
  let value: string;
  if (typeof src === 'string') value = src;
  else if ('env' in src) {
    const v = (o.env ?? process.env)[src.env];
    if (v === undefined || v === '') {
      problems.push(`${field}: environment variable ${src.env} is not set`);
      return undefined;
    }
    value = v;
  } else {
    const path = resolve(o.baseDir ?? '.', src.file);
    try {
      value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      problems.push(
        `${field}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
      return undefined;
    }
  }
  if (value.length < MIN_SECRET_CHARS) {
    problems.push(`${field}: use at least ${MIN_SECRET_CHARS} characters`);
    return undefined;
  }
  return value;
}

/** One problem per zod issue; an unknown key is named by its own path. */
function issueProblems(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((i) => {
    const at = i.path.map(String);
    if (i.code !== 'unrecognized_keys') return [`${at.join('.') || '(root)'}: ${i.message}`];
    const lines = i.message.split('\n');
    return i.keys.map((k, n) => `${[...at, k].join('.')}: ${lines[n] ?? 'unknown key'}`);
  });
}

/**
 * Validates a parsed config object and reads its secrets; throws ConfigError listing every problem
 * with its field path.
 * @example const cfg = parseConfig(parseYaml(text), 'meridian.yaml', { baseDir: '/etc/meridian' });
 */
export function parseConfig(raw: unknown, source = 'config', options: ParseOptions = {}): MeridianConfig {
  const res = configSchema.safeParse(raw);
  if (!res.success) throw new ConfigError(issueProblems(res.error.issues), source);
  const parsed = res.data;
  const problems: string[] = [];
  const clusterSecret = readSecret(parsed.secrets.clusterSecret, 'secrets.clusterSecret', options, problems);
  const adminToken =
    parsed.secrets.adminToken === undefined
      ? undefined
      : readSecret(parsed.secrets.adminToken, 'secrets.adminToken', options, problems);
  const cfg: MeridianConfig = {
    ...parsed,
    secrets: { clusterSecret: clusterSecret ?? '', ...(adminToken !== undefined ? { adminToken } : {}) },
  };
  const ids = cfg.regions.map((r) => r.id);
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

/** Parses a .json, .yaml or .yml file without validating it; ConfigError when it cannot be read or parsed. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : (e as Error).message;
    throw new ConfigError([`cannot read the config file: ${why}`], path);
  }
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError([`cannot parse: ${(e as Error).message.split('\n')[0]}`], path);
  }
}

/**
 * Reads a .json, .yaml or .yml file and validates it; a relative `{file: ...}` secret is read
 * relative to the file's folder.
 * @example const cfg = loadConfig('meridian.yaml');
 */
export function loadConfig(path: string, env?: Record<string, string | undefined>): MeridianConfig {
  return parseConfig(readConfigFile(path), path, {
    baseDir: dirname(resolve(path)),
    ...(env ? { env } : {}),
  });
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
