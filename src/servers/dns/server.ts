/**
 * The network shell of the GeoDNS server: one UDP socket and one TCP listener on the same port.
 * UDP answers are cut to the client's size with TC set; TCP carries length-prefixed messages, many
 * per connection, pipelined (RFC 7766). Nothing a client sends can throw out of here.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, isIPv6, type Server } from 'node:net';
import type { MeridianConfig } from '../../adapters/config.js';
import { type NetworkGeoIp, openGeoIp } from '../../adapters/geoip.js';
import { answerQuery, type Outcome, type QueryContext, type Router } from './answer.js';
import { ANSWER_CACHE_ENTRIES, AnswerCache } from './cache.js';
import { EdgeHealthMonitor, type Probe } from './health.js';
import { TCP_LIMITS, TcpConnections, type TcpCounters, type TcpLimits } from './tcp.js';
import { zonePlan } from './zone.js';

export interface DnsStats {
  udpQueries: number;
  tcpQueries: number;
  dropped: number;
  truncated: number;
  failOpen: number;
  byRcode: Record<string, number>;
  /** Service-name answers by the nearest region answered. */
  byRegion: Record<string, number>;
  cacheHits: number;
  cacheMisses: number;
  /** TCP connections open now, and how many were closed by each limit (src/servers/dns/tcp.ts). */
  tcpConnections: number;
  tcpClosed: TcpCounters;
}

export interface DnsServerOptions {
  /** Overrides cfg.dns.listen (tests pass port 0). */
  host?: string;
  port?: number;
  /** Default: openGeoIp(cfg.geoip). */
  geo?: NetworkGeoIp;
  /** Default: HTTP GET of each edge's /healthz. */
  probe?: Probe;
  /** Answers memoized (0: no cache, every query decoded and encoded); default ANSWER_CACHE_ENTRIES. */
  cacheEntries?: number;
  /** SOA serial; default: seconds since the epoch now. */
  serialS?: number;
  /** TCP connection limits; default TCP_LIMITS. */
  tcp?: Partial<TcpLimits>;
  log?: (line: string) => void;
}

export interface DnsServer {
  host: string;
  /** UDP and TCP listen on this same port. */
  port: number;
  health: EdgeHealthMonitor;
  stats(): DnsStats;
  close(): Promise<void>;
}

function bindUdp(sock: Socket, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    sock.once('error', onError);
    sock.bind(port, host, () => {
      sock.off('error', onError);
      resolve(sock.address().port);
    });
  });
}

function listenTcp(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Starts the server: one health probe round, then UDP and TCP on cfg.dns.listen.
 * @example
 * const dns = await startDnsServer(cfg, { port: 0 });
 * // dig @127.0.0.1 -p ${dns.port} app.meridian.test A +subnet=81.2.69.0/24
 * await dns.close();
 */
export async function startDnsServer(cfg: MeridianConfig, opts: DnsServerOptions = {}): Promise<DnsServer> {
  const log = opts.log ?? (() => {});
  const plan = zonePlan(cfg, opts.serialS ?? Math.floor(Date.now() / 1000), opts.host);
  const geo = opts.geo ?? (await openGeoIp(cfg.geoip));
  const health = new EdgeHealthMonitor(
    plan.regions,
    cfg.edge.health,
    opts.probe ? { probe: opts.probe } : {},
  );
  await health.start();
  const router: Router = { plan, geo, isHealthy: (id) => health.isHealthy(id) };
  const compute = (msg: Buffer, ctx: QueryContext) => answerQuery(msg, ctx, router);
  const cacheEntries = opts.cacheEntries ?? ANSWER_CACHE_ENTRIES;
  const cache = new AnswerCache(compute, cacheEntries);
  health.onChange((region, t) => {
    cache.clear();
    log(`health: ${region} ${t.from} -> ${t.to} (${t.reason})`);
  });

  const stats: DnsStats = {
    udpQueries: 0,
    tcpQueries: 0,
    dropped: 0,
    truncated: 0,
    failOpen: 0,
    byRcode: {},
    byRegion: {},
    cacheHits: 0,
    cacheMisses: 0,
    tcpConnections: 0,
    tcpClosed: { evicted: 0, idleClosed: 0, slowClosed: 0, unreadClosed: 0 },
  };
  const answer = (msg: Buffer, sourceIp: string, transport: 'udp' | 'tcp'): Outcome => {
    let out: Outcome;
    try {
      out =
        cacheEntries > 0 ? cache.answer(msg, { sourceIp, transport }) : compute(msg, { sourceIp, transport });
    } catch (e) {
      // answerQuery is written not to throw; if it ever does, drop rather than die.
      out = { kind: 'drop', reason: `internal: ${(e as Error).message}` };
      log(`dns: dropped a query after an internal error: ${(e as Error).stack ?? e}`);
    }
    if (transport === 'udp') stats.udpQueries++;
    else stats.tcpQueries++;
    if (out.kind === 'drop') stats.dropped++;
    else {
      stats.byRcode[out.rcode] = (stats.byRcode[out.rcode] ?? 0) + 1;
      if (out.truncated) stats.truncated++;
      if (out.failOpen) stats.failOpen++;
      const nearest = out.regions[0];
      if (nearest) stats.byRegion[nearest] = (stats.byRegion[nearest] ?? 0) + 1;
    }
    return out;
  };

  const host = opts.host ?? cfg.dns.listen.host;
  const wantPort = opts.port ?? cfg.dns.listen.port;
  let udp: Socket | undefined;
  let tcp: Server | undefined;
  let port = 0;
  const tcpConns = new TcpConnections({ ...TCP_LIMITS, ...opts.tcp }, (msg, client) => {
    const out = answer(msg, client, 'tcp');
    return out.kind === 'reply' ? out.bytes : undefined;
  });
  // With port 0 the OS picks the UDP port; TCP must then get the same one, which another process
  // may hold: try a few times.
  for (let attempt = 0; ; attempt++) {
    udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
    tcp = createServer({ noDelay: true });
    try {
      port = await bindUdp(udp, wantPort, host);
      await listenTcp(tcp, port, host);
      break;
    } catch (e) {
      udp.close();
      tcp.close();
      if (wantPort !== 0 || attempt >= 10) {
        health.stop();
        throw e;
      }
    }
  }
  const udpSock = udp;
  const tcpServer = tcp;

  udpSock.on('error', (e) => log(`dns: udp socket error: ${e.message}`));
  udpSock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const out = answer(msg, rinfo.address, 'udp');
    if (out.kind === 'reply') {
      // No callback: a failed send surfaces as the socket's 'error' event (logged above), and
      // skipping the per-packet completion callback saves a closure and a wrap per answer.
      udpSock.send(out.bytes, rinfo.port, rinfo.address);
    }
  });

  tcpServer.on('error', (e) => log(`dns: tcp listener error: ${e.message}`));
  tcpServer.on('connection', (sock) => tcpConns.accept(sock));

  return {
    host,
    port,
    health,
    stats: () => ({
      ...structuredClone(stats),
      cacheHits: cache.hits,
      cacheMisses: cache.misses,
      tcpConnections: tcpConns.size,
      tcpClosed: { ...tcpConns.counters },
    }),
    close: async () => {
      health.stop();
      tcpConns.closeAll();
      await Promise.all([
        new Promise<void>((resolve) => udpSock.close(() => resolve())),
        new Promise<void>((resolve) => tcpServer.close(() => resolve())),
      ]);
    },
  };
}
