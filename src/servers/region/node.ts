/**
 * A running region node: its store, core, HTTP app, inbound replication links, acknowledgements
 * and log compaction, with a drain that stops it cleanly (SIGTERM).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import {
  collectionSpecs,
  type MeridianConfig,
  nodeUrlFrom,
  regionConfig,
  regionInfos,
} from '../../adapters/config.js';
import { createLogger, type Logger, type LogLevel } from '../../adapters/logger.js';
import { RegionMetrics } from '../../adapters/metrics.js';
import { openStore } from '../../adapters/open-store.js';
import { HttpTransport } from '../../adapters/replication/http-transport.js';
import { systemClock, systemRandom, systemTimers } from '../../adapters/system.js';
import { decodeHlc } from '../../core/hlc.js';
import type { Clock, Timers } from '../../core/ports.js';
import { RegionCore, type RegionEvent } from '../../core/region.js';
import { type PeerFeed, type PeerLink, ReplicationDriver } from '../../core/replication/index.js';
import type { RegionStore } from '../../core/store.js';
import type { RegionId } from '../../core/types.js';
import type { VersionVector } from '../../core/version.js';
import { buildRegionApp } from './app.js';
import type { MutationHook, RegionNodeContext, RegionRouteModule } from './context.js';
import { defaultMutationHooks, defaultRouteModules } from './modules.js';

const NO_LINKS: ReadonlyMap<RegionId, PeerLink> = new Map();

const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface RegionNodeOptions {
  cfg: MeridianConfig;
  region: RegionId;
  /** Default: `openStore(cfg, region)` (cfg.store). */
  store?: RegionStore;
  /** Default: the region's `node.listen` from the config. */
  listen?: { host: string; port: number };
  logger?: Logger;
  logLevel?: LogLevel;
  routeModules?: readonly RegionRouteModule[];
  mutationHooks?: readonly MutationHook[];
  clock?: Clock;
  timers?: Timers;
  /** Open replication streams to peers (default true). */
  replicate?: boolean;
}

export class RegionNode implements RegionNodeContext {
  /** The core's replication driver (src/core/replication), over HTTP; the simulator runs the same one. */
  readonly replication: ReplicationDriver;
  app!: FastifyInstance;
  /** The base URL the node listens on (its real port when the config said 0). */
  url = '';
  private draining = false;
  private closing: Promise<void> | undefined;
  /** Whether the links were started (`replicate: false` serves streams but opens none). */
  private replicating = false;
  private readonly lastLagMs = new Map<RegionId, number>();
  /** Quarantined changes reported since start, newest last (the store's QUARANTINE_NS keeps all). */
  readonly quarantine: { total: number; recent: Extract<RegionEvent, { type: 'quarantined' }>[] } = {
    total: 0,
    recent: [],
  };
  private readonly dispatcher = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });

  private constructor(
    readonly cfg: MeridianConfig,
    readonly region: RegionId,
    readonly core: RegionCore,
    readonly store: RegionStore,
    readonly metrics: RegionMetrics,
    readonly log: Logger,
    readonly mutationHooks: readonly MutationHook[],
    timers: Timers,
  ) {
    const peers = cfg.regions.map((r) => r.id).filter((r) => r !== region);
    this.replication = new ReplicationDriver({
      core,
      peers,
      transport: new HttpTransport({
        region,
        peers: peers.map((id) => ({ id, url: nodeUrlFrom(cfg, region, id) })),
        clusterSecret: cfg.secrets.clusterSecret,
        dispatcher: this.dispatcher,
      }),
      // Durations (heartbeats, downtime): the system clock, whatever clock the core was given.
      clock: systemClock,
      timers,
      random: systemRandom,
      settings: cfg.replication,
      events: {
        connected: (peer, relay) => log.info({ peer, relay }, 'replication stream connected'),
        streamFailed: (peer, err) => log.debug({ peer, err: err.message }, 'replication stream failed'),
        reconnect: (peer) => metrics.streamReconnects.inc({ peer }),
        snapshotApplied: (from) => metrics.snapshotsApplied.inc({ from }),
        relayChanged: (via, relay) => log.info({ via, relay }, 'changing relay set'),
        ackFailed: (peer, err) => log.debug({ peer, err: err.message }, 'ack failed'),
        feedFailed: (peer, err) =>
          log.warn({ peer, err: err.message }, 'replication stream ended with an error'),
        compactionFailed: (err) => log.warn({ err: err.message }, 'log compaction failed'),
      },
    });
  }

  /** Outbound replication streams being served, closed first when draining. */
  get feeds(): Set<PeerFeed> {
    return this.replication.feeds;
  }

  /** Inbound replication links, one per peer (none with `replicate: false`). */
  get links(): ReadonlyMap<RegionId, PeerLink> {
    return this.replicating ? this.replication.links : NO_LINKS;
  }

  /**
   * Opens the store, starts the HTTP server and the replication links.
   * @example
   *   const node = await RegionNode.start({ cfg: loadConfig('meridian.yaml'), region: 'us-east-1' });
   *   process.on('SIGTERM', () => node.drain());
   */
  static async start(o: RegionNodeOptions): Promise<RegionNode> {
    const rc = regionConfig(o.cfg, o.region);
    const log =
      o.logger ??
      createLogger({ level: o.logLevel, bindings: { region: o.region, component: 'region-node' } });
    const peers = o.cfg.regions.map((r) => r.id).filter((r) => r !== o.region);
    const metrics = new RegionMetrics({ region: o.region, peers });
    const store = o.store ?? (await openStore(o.cfg, o.region));
    let node: RegionNode | undefined;
    const core = await RegionCore.open({
      region: o.region,
      regions: regionInfos(o.cfg),
      collections: collectionSpecs(o.cfg),
      store,
      clock: o.clock ?? systemClock,
      timers: o.timers ?? systemTimers,
      maxOffsetMs: o.cfg.node.maxOffsetMs,
      // A peer silent for ten heartbeats is unreachable: its old readings no longer count.
      peerClockStaleAfterMs: 10 * o.cfg.replication.heartbeatMs,
      awaitPeerClocks: o.replicate !== false,
      syncTimeoutMs: o.cfg.node.syncTimeoutMs,
      maxWaitMs: o.cfg.node.maxWaitMs,
      // better-sqlite3 commits without yielding: without this, the commit loop would run inside the
      // request that started it and every write would commit alone. Yielding to I/O first lets the
      // requests that arrived together share one transaction.
      beforeBatch: yieldToIo,
      // A node opened on a wiped or older disk must learn from its peers which of its own changes
      // they hold before it issues sequence numbers again (docs/region-node.md).
      recoverOwnOriginFrom: o.replicate === false ? [] : peers,
      onEvent: (e) => node?.onCoreEvent(e),
    });
    node = new RegionNode(
      o.cfg,
      o.region,
      core,
      store,
      metrics,
      log,
      o.mutationHooks ?? defaultMutationHooks,
      o.timers ?? systemTimers,
    );
    const n = node;
    metrics.bind(() => core.stats(), {
      lagChanges: () => Object.fromEntries([...n.links].map(([p, l]) => [p, l.lagChanges()])),
      lagMs: () =>
        Object.fromEntries(
          [...n.links].map(([p, l]) => [p, l.lagChanges() === 0 ? 0 : (n.lastLagMs.get(p) ?? 0)]),
        ),
      connectedPeers: () => [...n.links].filter(([, l]) => l.connected).map(([p]) => p),
    });
    metrics.bindClock(
      () => core.peerClockOffsets(),
      () => core.clockVerdict().state === 'beyond',
    );
    n.app = await buildRegionApp(n, {
      routeModules: o.routeModules ?? defaultRouteModules,
      extra: () => ({
        truncated: n.replication.truncated,
        quarantine: n.quarantine,
        links: Object.fromEntries(
          [...n.links].map(([p, l]) => [p, { connected: l.connected, lagChanges: l.lagChanges() }]),
        ),
      }),
    });
    const listen = o.listen ?? rc.node.listen;
    await n.app.listen({ host: listen.host, port: listen.port });
    const addr = n.app.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    n.url = `http://${host}:${addr.port}`;
    if (o.replicate !== false) {
      n.replicating = true;
      n.replication.start();
    }
    log.info({ url: n.url, store: o.cfg.store.kind, version: core.version }, 'region node listening');
    return n;
  }

  isDraining(): boolean {
    return this.draining;
  }

  /** Trims the change log now (the driver also does so every `compactIntervalMs`). */
  compact(): Promise<VersionVector> {
    return this.replication.compact();
  }

  private onCoreEvent(e: RegionEvent): void {
    switch (e.type) {
      case 'committed': {
        if (e.changes.length === 0) return;
        const now = Date.now();
        for (const c of e.changes) {
          if (c.origin === this.region) continue;
          const lag = Math.max(0, now - decodeHlc(c.hlc).wallMs);
          this.metrics.replicationLagObserved.observe({ origin: c.origin }, lag);
          this.metrics.replicationLag.observe({ origin: c.origin }, lag);
          this.lastLagMs.set(c.origin, lag);
        }
        return;
      }
      case 'conflict':
        this.metrics.conflicts.inc({ collection: e.collection });
        return;
      case 'sync-timeout':
        this.metrics.syncTimeouts.inc({ collection: e.collection });
        this.log.warn(
          { collection: e.collection, key: e.key, seq: e.seq },
          'sync write not confirmed in time',
        );
        return;
      case 'clock-skew':
        this.metrics.clockSkew.inc({ from: e.from });
        this.log.warn({ from: e.from, msg: e.message }, 'remote clock too far ahead');
        return;
      case 'clock-unsafe':
        this.log.warn(
          { aheadMs: Math.round(e.aheadMs), peers: e.peers, maxOffsetMs: this.cfg.node.maxOffsetMs },
          e.refusing
            ? 'clock beyond maxOffsetMs from a majority of peers: refusing writes'
            : 'clock back within maxOffsetMs of its peers: accepting writes',
        );
        return;
      case 'snapshot-applied':
        this.log.info({ from: e.from, docs: e.docs }, 'snapshot applied');
        return;
      case 'store-failed':
        // The core stopped: what the failed commit left on disk is unknown until a restart reads it.
        // Drain (health answers 503 at once) and leave with a failure code for the supervisor.
        this.log.fatal(
          { err: e.message },
          'the store failed a commit: stopping; a restart recovers from disk',
        );
        process.exitCode = 70;
        void this.drain();
        return;
      case 'quarantined': {
        this.metrics.quarantined.inc({ origin: e.origin });
        const { type: _t, ...fields } = e;
        this.log.warn(fields, 'replication change quarantined');
        this.quarantine.total++;
        this.quarantine.recent.push(e);
        if (this.quarantine.recent.length > 100) this.quarantine.recent.shift();
        return;
      }
      case 'residency-refused':
        // Origin and sequence only: the collection and key are what this region may not hold.
        this.log.warn(
          { from: e.from, origin: e.origin, seq: e.seq, records: e.records },
          'refused resident data a peer sent',
        );
        return;
      case 'applied':
        return;
    }
  }

  /**
   * Stops the node: health turns 503 at once, then (after `graceMs`, so load balancers notice)
   * replication stops, the server stops accepting, in-flight requests finish, the store closes.
   */
  drain(options: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      this.log.info({ graceMs: options.graceMs ?? 0 }, 'draining');
      if (options.graceMs) await new Promise((r) => setTimeout(r, options.graceMs));
      await this.replication.stop();
      const closed = this.app.close();
      // Connections whose last request ends during the close become idle later: close them then.
      const sweep = setInterval(() => this.app.server.closeIdleConnections(), 100);
      await closed;
      clearInterval(sweep);
      this.core.close();
      await this.dispatcher.close().catch(() => undefined);
      await this.store.close();
      this.log.info('closed');
    })();
    return this.closing;
  }

  close(): Promise<void> {
    return this.drain();
  }
}
