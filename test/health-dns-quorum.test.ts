/**
 * GeoDNS health from more than one vantage point (issue 18): the DNS's own probes of an edge are
 * one vote and every edge's view of every region another; a region is withdrawn only when a quorum
 * of the votes cast says it is down. Real DNS server, stand-in edges over real HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { type DnsServer, startDnsServer } from '../src/servers/dns/index.js';
import { digShort, dnsConfig, REGIONS, SUBNET_NEAR, waitFor } from './dns-helpers.js';

interface VoterEdge {
  region: string;
  url: string;
  /** 'ok': /healthz answers 200; 'silent': it never answers (a path the DNS cannot cross). */
  health: 'ok' | 'silent';
  /** What /edge/status says of each region; undefined: 404 (no view); 'garbage': not JSON. */
  view: Record<string, 'up' | 'down'> | 'garbage' | undefined;
  app: FastifyInstance;
}

async function voterEdge(region: string, host: string): Promise<VoterEdge> {
  const app = Fastify({ logger: false });
  const e: VoterEdge = { region, url: '', health: 'ok', view: undefined, app };
  app.get('/healthz', async (_req, reply) => {
    if (e.health === 'silent') return new Promise(() => {});
    return reply.send({ edge: region, status: 'ok' });
  });
  app.get('/edge/status', async (_req, reply) => {
    if (e.view === undefined) return reply.code(404).send({});
    if (e.view === 'garbage') return reply.type('application/json').send('{"regions": [{"region": 7');
    return reply.send({
      edge: region,
      regions: Object.entries(e.view).map(([r, status]) => ({ region: r, status, srttMs: 1 })),
    });
  });
  await app.listen({ host, port: 0 });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  e.url = `http://${host}:${addr.port}`;
  return e;
}

const allUp = (): Record<string, 'up' | 'down'> => Object.fromEntries(REGIONS.map((r) => [r.id, 'up']));

describe('GeoDNS health by quorum of vantage points', () => {
  let edges: VoterEdge[] = [];
  let server: DnsServer;
  const eu = (): VoterEdge => edges[1]!;

  before(async () => {
    edges = await Promise.all(REGIONS.map((r) => voterEdge(r.id, `127.0.${r.k}.1`)));
    for (const e of edges) e.view = allUp();
    server = await startDnsServer(
      dnsConfig(
        edges.map((e) => ({ region: e.region, url: e.url, healthy: true, close: () => e.app.close() })),
      ),
    );
  });
  after(async () => {
    await server.close();
    await Promise.all(edges.map((e) => e.app.close()));
  });

  const euAnswered = async (): Promise<boolean> => {
    const a = await digShort(server.port, ['app.meridian.test', 'A', `+subnet=${SUBNET_NEAR['eu-west-1']}`]);
    return a.includes('127.0.2.1');
  };
  const settle = () => new Promise((r) => setTimeout(r, 800));

  it('keeps a region its own probes cannot reach while every edge sees it up', async () => {
    eu().health = 'silent';
    await waitFor('the DNS probes to fail', async () =>
      server.health.view().find((v) => v.region === 'eu-west-1')?.probed === 'down' ? true : undefined,
    );
    await settle();
    assert.equal(server.health.isHealthy('eu-west-1'), true);
    assert.equal(await euAnswered(), true, 'a UK client is still sent to eu-west-1');
    const v = server.health.view().find((x) => x.region === 'eu-west-1')!;
    assert.equal(v.votes.dns, 'down');
    assert.equal(v.votes['us-east-1'], 'up');
  });

  it('withdraws it when the edges agree it is down', async () => {
    for (const e of edges) e.view = { ...allUp(), 'eu-west-1': 'down' };
    await waitFor('eu-west-1 withdrawn', async () =>
      server.health.isHealthy('eu-west-1') ? undefined : true,
    );
    assert.equal(await euAnswered(), false);
    eu().health = 'ok';
    for (const e of edges) e.view = allUp();
    await waitFor('eu-west-1 back', async () => (server.health.isHealthy('eu-west-1') ? true : undefined));
    assert.equal(await euAnswered(), true);
  });

  it('an edge that cannot be asked, or answers garbage, abstains; the rest still decide', async () => {
    edges[0]!.view = undefined;
    edges[2]!.view = 'garbage';
    eu().view = { ...allUp(), 'eu-west-1': 'down' };
    await settle();
    // Votes: the DNS (up) and eu-west-1's own edge (down): no majority, so it stays.
    assert.equal(server.health.isHealthy('eu-west-1'), true);
    const v = server.health.view().find((x) => x.region === 'eu-west-1')!;
    assert.deepEqual(v.votes, {
      dns: 'up',
      'us-east-1': 'abstain',
      'eu-west-1': 'down',
      'ap-northeast-1': 'abstain',
    });
    eu().view = allUp();
    edges[0]!.view = allUp();
    edges[2]!.view = allUp();
  });

  it('withdraws an edge that refuses connections on its own probes, whatever the views', async () => {
    await eu().app.close();
    await waitFor(
      'eu-west-1 withdrawn',
      async () => (server.health.isHealthy('eu-west-1') ? undefined : true),
      3000,
    );
    assert.match(server.health.view().find((x) => x.region === 'eu-west-1')!.reason, /refuses/);
  });
});
