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
import { AckSender } from '../../adapters/replication/acks.js';
import type { PeerFeed } from '../../adapters/replication/feed.js';
import { PeerLink } from '../../adapters/replication/link.js';
import { systemClock, systemTimers } from '../../adapters/system.js';
import { decodeHlc } from '../../core/hlc.js';
import type { Clock, Timers } from '../../core/ports.js';
import { RegionCore, type RegionEvent } from '../../core/region.js';
import type { RegionStore } from '../../core/store.js';
import type { RegionId } from '../../core/types.js';
import { seqOf, type VersionVector } from '../../core/version.js';
import { buildRegionApp } from './app.js';
import type { MutationHook, RegionNodeContext, RegionRouteModule } from './context.js';
import { defaultMutationHooks, defaultRouteModules } from './modules.js';

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
  readonly feeds = new Set<PeerFeed>();
  readonly links = new Map<RegionId, PeerLink>();
  app!: FastifyInstance;
  /** The base URL the node listens on (its real port when the config said 0). */
  url = '';
  private draining = false;
  private closing: Promise<void> | undefined;
  private acks: AckSender | undefined;
  private compactTimer: NodeJS.Timeout | undefined;
  private relayTimer: NodeJS.Timeout | undefined;
  private compacting = false;
  private truncated: VersionVector = {};
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
  ) {}

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
        truncated: n.truncated,
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
    if (o.replicate !== false) n.startReplication(peers);
    log.info({ url: n.url, store: o.cfg.store.kind, version: core.version }, 'region node listening');
    return n;
  }

  isDraining(): boolean {
    return this.draining;
  }

  private startReplication(peers: RegionId[]): void {
    const r = this.cfg.replication;
    const urls = peers.map((id) => ({ id, url: nodeUrlFrom(this.cfg, this.region, id).replace(/\/+$/, '') }));
    this.acks = new AckSender({
      core: this.core,
      peers: urls,
      clusterSecret: this.cfg.secrets.clusterSecret,
      log: this.log,
      refreshMs: r.heartbeatMs,
    });
    this.acks.start();
    for (const { id, url } of urls) {
      const link = new PeerLink({
        core: this.core,
        peer: id,
        url,
        clusterSecret: this.cfg.secrets.clusterSecret,
        dispatcher: this.dispatcher,
        heartbeatMs: r.heartbeatMs,
        reconnectMinMs: r.reconnectMinMs,
        reconnectMaxMs: r.reconnectMaxMs,
        log: this.log,
        onSnapshot: (p) => {
          this.metrics.snapshotsApplied.inc({ from: p });
          this.acks?.poke();
        },
        onReconnect: (p) => this.metrics.streamReconnects.inc({ peer: p }),
        relayFor: () => this.relayWanted(id),
      });
      this.links.set(id, link);
      link.start();
    }
    this.compactTimer = setInterval(() => void this.compact(), r.compactIntervalMs);
    this.compactTimer.unref();
    this.relayTimer = setInterval(() => this.checkRelays(), r.heartbeatMs);
    this.relayTimer.unref();
  }

  /**
   * Origins that `via` should relay to us: the peers whose own stream to us has been down for two
   * heartbeats. Normally none, so each change crosses each link once.
   */
  private relayWanted(via: RegionId): RegionId[] {
    const now = Date.now();
    const downAfterMs = 2 * this.cfg.replication.heartbeatMs;
    return [...this.links.values()]
      .filter((l) => l.peer !== via && l.downSinceMs !== undefined && now - l.downSinceMs >= downAfterMs)
      .map((l) => l.peer);
  }

  /** Re-opens a stream whose relay set no longer matches which direct streams are down. */
  private checkRelays(): void {
    for (const l of this.links.values()) {
      if (!l.connected) continue;
      const want = this.relayWanted(l.peer).sort();
      if (want.join(',') !== l.relaying.join(',')) {
        this.log.info({ via: l.peer, relay: want }, 'changing relay set');
        l.refresh();
      }
    }
  }

  /**
   * Trims the change log: what every peer acknowledged, beyond `logKeep`; and, whatever the acks,
   * beyond `logMaxRetain` (a peer that far behind gets a snapshot).
   */
  async compact(): Promise<VersionVector> {
    if (this.compacting || this.draining) return this.truncated;
    this.compacting = true;
    try {
      const { logKeep, logMaxRetain } = this.cfg.replication;
      this.truncated = await this.core.compactLog(logKeep);
      const over = Object.entries(this.core.version).some(
        ([origin, seq]) => seq - seqOf(this.truncated, origin) > logMaxRetain,
      );
      if (over) this.truncated = await this.core.compactLog(logMaxRetain, { force: true });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'log compaction failed');
    } finally {
      this.compacting = false;
    }
    return this.truncated;
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
      if (this.compactTimer) clearInterval(this.compactTimer);
      if (this.relayTimer) clearInterval(this.relayTimer);
      this.acks?.stop();
      await Promise.all([...this.links.values()].map((l) => l.stop()));
      for (const f of this.feeds) f.close();
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
