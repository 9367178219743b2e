/**
 * Region-to-region routes under /internal/: the replication stream, acknowledgements and a status
 * view. Every one needs `Authorization: Bearer <clusterSecret>`; without it: 401, nothing changes.
 * The check is on the route the router matched, never on how the client spelled the path.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ndjsonSink } from '../../adapters/replication/http-transport.js';
import {
  ACK_PATH,
  NDJSON,
  PEER_HEADER,
  STATUS_PATH,
  STREAM_PATH,
} from '../../adapters/replication/protocol.js';
import { MeridianError } from '../../core/errors.js';
import { parseAck } from '../../core/replication/protocol.js';
import type { RegionId } from '../../core/types.js';
import { decodeToken, encodeToken } from '../../core/version.js';
import type { RegionNodeContext } from './context.js';
import { H } from './headers.js';

export interface InternalStatusExtra {
  /** Filled in by the node: inbound links, compaction state. */
  extra?: () => Record<string, unknown>;
}

/** Constant-time comparison of the bearer token with the cluster secret. */
export function hasClusterSecret(req: FastifyRequest, secret: string): boolean {
  const auth = req.headers.authorization;
  if (typeof auth !== 'string' || !auth.startsWith('Bearer ')) return false;
  const got = Buffer.from(auth.slice(7));
  const want = Buffer.from(secret);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Where a route's own pattern puts it among the region-to-region routes (its declared URL). */
export const INTERNAL_PREFIX = '/internal/';

/**
 * Whether an unmatched path would read as /internal/... under any spelling a router or proxy might
 * normalise: percent-encoding (repeated), case, backslashes, dot segments, repeated slashes.
 * Such probes get 401 like the real routes, so an unknown path tells nothing without the secret.
 */
export function spellsInternal(url: string): boolean {
  let path = url.split(/[?#]/, 1)[0] ?? '';
  for (let i = 0; i < 4 && path.includes('%'); i++) {
    try {
      path = decodeURIComponent(path);
    } catch {
      break;
    }
  }
  const segments: string[] = [];
  for (const s of path.replace(/\\/g, '/').toLowerCase().split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s);
  }
  return segments[0]?.startsWith('internal') ?? false;
}

function knownPeer(node: RegionNodeContext, raw: unknown, what: string): RegionId {
  const id = typeof raw === 'string' ? raw : undefined;
  if (!id || id === node.region || !node.cfg.regions.some((r) => r.id === id)) {
    throw new MeridianError(
      'bad_request',
      `${what}: '${String(raw)}' is not a peer region of ${node.region}`,
    );
  }
  return id;
}

export function registerInternalRoutes(
  app: FastifyInstance,
  node: RegionNodeContext,
  options: InternalStatusExtra = {},
): void {
  const secret = node.cfg.secrets.clusterSecret;
  // On every request, matched or not: a matched one by its route's declared pattern (what the
  // router decided, whatever the spelling); an unmatched one by what its path could be read as.
  app.addHook('onRequest', async (req) => {
    const pattern = req.routeOptions.url;
    const internal = pattern === undefined ? spellsInternal(req.url) : pattern.startsWith(INTERNAL_PREFIX);
    if (internal && !hasClusterSecret(req, secret)) {
      throw new MeridianError(
        'unauthorized',
        'region-to-region route: send Authorization: Bearer <cluster secret>',
      );
    }
  });

  app.get<{ Querystring: { have?: string; relay?: string } }>(STREAM_PATH, async (req, reply) => {
    const peer = knownPeer(node, req.headers[PEER_HEADER], PEER_HEADER);
    const have = req.query.have ? decodeToken(req.query.have) : {};
    // Absent: relay every origin. Present (maybe empty): only these besides our own changes.
    const relay =
      req.query.relay === undefined
        ? 'all'
        : req.query.relay
            .split(',')
            .filter((r) => r.length > 0)
            .map((r) => knownPeer(node, r, 'relay'));
    if (node.isDraining()) throw new MeridianError('unavailable', `${node.region} is draining`);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': NDJSON,
      'cache-control': 'no-store',
      [H.region]: node.region,
      [H.version]: encodeToken(node.core.version),
    });
    const { feed, done } = node.replication.serve(peer, { have, relay }, ndjsonSink(raw));
    raw.on('close', () => feed.close());
    node.log.info({ peer, relay }, 'serving replication stream');
    try {
      await done;
    } finally {
      raw.end();
    }
  });

  app.post(ACK_PATH, async (req) => {
    const ack = parseAck(req.body);
    knownPeer(node, ack.region, 'region');
    return node.replication.receiveAck(ack);
  });

  app.get(STATUS_PATH, async () => ({
    region: node.region,
    draining: node.isDraining(),
    stats: node.core.stats(),
    feeds: [...node.feeds].map((f) => ({ peer: f.peer, sentChanges: f.sentChanges })),
    ...(options.extra?.() ?? {}),
  }));
}
