/**
 * The replication driver of one region: a link per peer (streams in), feeds for peers' streams
 * (streams out), acknowledgements, relay selection and log compaction. The region node runs it over
 * HTTP, the simulator over its faulty network: the same code, through the transport port.
 */
import type { Clock, Random, TimerHandle, Timers } from '../ports.js';
import type { RegionId } from '../types.js';
import { seqOf, type VersionVector } from '../version.js';
import { AckSender } from './acks.js';
import { PeerFeed, type ReplicaCore } from './feed.js';
import { PeerLink } from './link.js';
import type { AckAnswer, AckBody, StreamRequest } from './protocol.js';
import type { ReplicationTransport, StreamSink } from './transport.js';

/** The replication settings (the `replication:` section of meridian.yaml). */
export interface ReplicationSettings {
  /** A stream sends a heartbeat this often; a receiver that hears nothing for 3x this reconnects. */
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Changes kept in the log beyond what every peer acknowledged. */
  logKeep: number;
  /** Changes kept at most whatever the acks; a peer further behind gets a snapshot. */
  logMaxRetain: number;
  compactIntervalMs: number;
  /**
   * Acknowledgements of async changes are batched this long (default 20 ms); a sync change's ack
   * goes at once.
   */
  ackBatchMs?: number;
  /** A feed woken by a commit waits this long for more before sending (default 0: at once). */
  feedLingerMs?: number;
}

/** What the driver reports; the node turns these into metrics and logs, the simulator into its log. */
export interface ReplicationEvents {
  connected?: (peer: RegionId, relay: readonly RegionId[]) => void;
  streamFailed?: (peer: RegionId, err: Error) => void;
  reconnect?: (peer: RegionId) => void;
  snapshotApplied?: (peer: RegionId) => void;
  relayChanged?: (via: RegionId, relay: readonly RegionId[]) => void;
  ackFailed?: (peer: RegionId, err: Error) => void;
  feedFailed?: (peer: RegionId, err: Error) => void;
  compactionFailed?: (err: Error) => void;
}

export interface ReplicationDriverOptions {
  core: ReplicaCore;
  peers: readonly RegionId[];
  transport: ReplicationTransport;
  /** For durations (heartbeats, downtime, relay decisions), not for what peers are told. */
  clock: Clock;
  timers: Timers;
  random: Random;
  settings: ReplicationSettings;
  events?: ReplicationEvents;
  /** Changes per catch-up message (default 1000). */
  batchLimit?: number;
}

/**
 * @example
 *   const driver = new ReplicationDriver({ core, peers, transport, clock, timers, random, settings });
 *   driver.start();
 *   // the transport's server side: driver.serve(peer, request, sink), driver.receiveAck(body)
 *   await driver.stop();
 */
export class ReplicationDriver {
  readonly links = new Map<RegionId, PeerLink>();
  /** Outbound streams being served. */
  readonly feeds = new Set<PeerFeed>();
  /** The log's cut after the last compaction. */
  truncated: VersionVector = {};
  private acks: AckSender | undefined;
  private stopped = false;
  private compacting = false;
  private compactTimer: TimerHandle | undefined;
  private relayTimer: TimerHandle | undefined;

  constructor(private readonly o: ReplicationDriverOptions) {}

  /** Opens a link to every peer, starts acknowledging, checking relays and compacting. */
  start(): void {
    const { core, transport, clock, timers, random, settings, events } = this.o;
    this.acks = new AckSender({
      core,
      peers: this.o.peers,
      transport,
      clock,
      timers,
      refreshMs: settings.heartbeatMs,
      batchMs: settings.ackBatchMs,
      onFailed: events?.ackFailed,
    });
    this.acks.start();
    for (const peer of this.o.peers) {
      const link = new PeerLink({
        core,
        peer,
        transport,
        clock,
        timers,
        random,
        heartbeatMs: settings.heartbeatMs,
        reconnectMinMs: settings.reconnectMinMs,
        reconnectMaxMs: settings.reconnectMaxMs,
        relayFor: () => this.relayWanted(peer),
        onSnapshot: (p) => {
          events?.snapshotApplied?.(p);
          this.acks?.poke();
        },
        onReconnect: events?.reconnect,
        onConnected: events?.connected,
        onFailed: events?.streamFailed,
      });
      this.links.set(peer, link);
      link.start();
    }
    // Regions started together compact at different moments.
    this.scheduleCompaction(random.next() * settings.compactIntervalMs);
    this.scheduleRelayCheck();
  }

  /** Stops links, acks and timers, and ends the streams being served. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const { timers } = this.o;
    if (this.compactTimer !== undefined) timers.clearTimeout(this.compactTimer);
    if (this.relayTimer !== undefined) timers.clearTimeout(this.relayTimer);
    this.acks?.stop();
    await Promise.all([...this.links.values()].map((l) => l.stop()));
    for (const f of this.feeds) f.close();
    await this.o.transport.close?.();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Serves a peer's stream (the transport's server side): runs a feed into `sink` until the feed is
   * closed (`feed.close()` when the peer goes away) or the driver stops.
   * @example
   *   const { feed, done } = driver.serve('eu-west-1', { have, relay: [] }, sink);
   *   socket.on('close', () => feed.close());
   *   await done;
   */
  serve(peer: RegionId, request: StreamRequest, sink: StreamSink): { feed: PeerFeed; done: Promise<void> } {
    const feed = new PeerFeed(this.o.core, peer, request, sink, {
      heartbeatMs: this.o.settings.heartbeatMs,
      clock: this.o.clock,
      timers: this.o.timers,
      batchLimit: this.o.batchLimit,
      lingerMs: this.o.settings.feedLingerMs,
    });
    if (this.stopped) feed.close();
    this.feeds.add(feed);
    const done = feed
      .run()
      .catch((e: unknown) => this.o.events?.feedFailed?.(peer, e instanceof Error ? e : new Error(String(e))))
      .finally(() => this.feeds.delete(feed));
    return { feed, done };
  }

  /** A peer's acknowledgement (the transport's server side); the answer carries our clock. */
  receiveAck(body: AckBody): AckAnswer {
    this.o.core.onPeerAck(body.region, body.applied);
    // Our clock, read as late as possible: the sender bounds our offset with it (an NTP round trip).
    return { ok: true, wallMs: this.o.core.wallClockMs() };
  }

  /** Changes of `peer`'s own origin that it has and we have not applied. */
  lagChanges(peer: RegionId): number {
    return this.links.get(peer)?.lagChanges() ?? 0;
  }

  /**
   * Origins that `via` should relay to us: the peers whose own stream to us has been down for two
   * heartbeats. Normally none, so each change crosses each link once.
   */
  relayWanted(via: RegionId): RegionId[] {
    const now = this.o.clock.nowMs();
    const downAfterMs = 2 * this.o.settings.heartbeatMs;
    return [...this.links.values()]
      .filter((l) => l.peer !== via && l.downSinceMs !== undefined && now - l.downSinceMs >= downAfterMs)
      .map((l) => l.peer);
  }

  /** Re-opens a stream whose relay set no longer matches which direct streams are down. */
  checkRelays(): void {
    for (const l of this.links.values()) {
      if (!l.connected) continue;
      const want = this.relayWanted(l.peer).sort();
      if (want.join(',') !== l.relaying.join(',')) {
        this.o.events?.relayChanged?.(l.peer, want);
        l.refresh();
      }
    }
  }

  /**
   * Trims the change log: what every peer acknowledged, beyond `logKeep`; and, whatever the acks,
   * beyond `logMaxRetain` (a peer that far behind gets a snapshot).
   */
  async compact(): Promise<VersionVector> {
    if (this.compacting || this.stopped) return this.truncated;
    this.compacting = true;
    try {
      const { logKeep, logMaxRetain } = this.o.settings;
      this.truncated = await this.o.core.compactLog(logKeep);
      const over = Object.entries(this.o.core.version).some(
        ([origin, seq]) => seq - seqOf(this.truncated, origin) > logMaxRetain,
      );
      if (over) this.truncated = await this.o.core.compactLog(logMaxRetain, { force: true });
    } catch (e) {
      this.o.events?.compactionFailed?.(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.compacting = false;
    }
    return this.truncated;
  }

  private scheduleCompaction(inMs: number): void {
    this.compactTimer = this.o.timers.setTimeout(() => {
      if (this.stopped) return;
      void this.compact();
      this.scheduleCompaction(this.o.settings.compactIntervalMs);
    }, inMs);
  }

  private scheduleRelayCheck(): void {
    this.relayTimer = this.o.timers.setTimeout(() => {
      if (this.stopped) return;
      this.checkRelays();
      this.scheduleRelayCheck();
    }, this.o.settings.heartbeatMs);
  }
}
