/**
 * Acknowledgements: tells every peer what this region has durably applied, as soon as it changes.
 * A few requests in flight per peer at most; whatever changed meanwhile goes in the next one, so
 * the ack rate adapts to the round-trip time. Acks confirm sync writes and let peers truncate their logs.
 * Each answer carries the peer's clock, which with ours before and after bounds its clock offset
 * from both sides (an NTP round trip, src/core/clock-offset.ts): no request of its own is needed.
 */
import { Pool } from 'undici';
import type { RegionCore } from '../../core/region.js';
import type { RegionId } from '../../core/types.js';
import { dominates, mergeVersions, type VersionVector } from '../../core/version.js';
import type { Logger } from '../logger.js';
import { ACK_PATH, type AckBody, answerWallMs } from './protocol.js';

export interface AckSenderOptions {
  core: RegionCore;
  peers: readonly { id: RegionId; url: string }[];
  clusterSecret: string;
  log: Logger;
  /** Re-sent this often even when nothing changed, so a restarted peer learns our version. */
  refreshMs: number;
  timeoutMs?: number;
  /** Acks of async-only changes wait this long to be batched (default 20 ms); sync ones go at once. */
  batchMs?: number;
  /** Acks in flight per peer at most (default 4). */
  maxInFlight?: number;
}

interface PeerState {
  id: RegionId;
  url: string;
  /** One keep-alive connection, pipelined: a new connection costs a handshake round trip. */
  pool: Pool;
  inFlight: number;
  /** The newest version handed to a request (in flight or answered). */
  queued: VersionVector;
  /** The newest version the peer confirmed receiving. */
  confirmed: VersionVector;
  lastSentMs: number;
}

/**
 * @example
 *   const acks = new AckSender({ core, peers, clusterSecret, log, refreshMs: 1000 });
 *   acks.start(); // acks follow commits by themselves; poke() after a snapshot
 */
export class AckSender {
  private readonly peers: PeerState[];
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private soon: NodeJS.Timeout | undefined;
  private readonly syncCollections = new Map<string, boolean>();

  constructor(private readonly o: AckSenderOptions) {
    this.peers = o.peers.map((p) => ({
      ...p,
      pool: new Pool(new URL(p.url).origin, { connections: 1, pipelining: o.maxInFlight ?? 4 }),
      inFlight: 0,
      queued: {},
      confirmed: {},
      lastSentMs: 0,
    }));
  }

  start(): void {
    // Remote changes committed here (from any stream, relayed or direct) are what peers wait on.
    this.unsubscribe = this.o.core.subscribe((changes) => {
      let remote = false;
      for (const c of changes) {
        if (c.origin === this.o.core.region) continue;
        remote = true;
        // A sync write waits for this ack at its origin: send it now.
        if (c.payload.kind === 'doc' && this.isSync(c.payload.collection)) return this.poke();
      }
      // Otherwise acks only feed log compaction and lag views: batching them saves work.
      if (remote) this.pokeSoon();
    });
    this.timer = setInterval(() => this.refresh(), this.o.refreshMs);
    this.timer.unref();
    // At once, not a refresh period later: the answers are the round trips whose clock readings a
    // freshly opened core waits for before its first write.
    for (const p of this.peers) this.maybeSend(p, true);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    for (const p of this.peers) void p.pool.close().catch(() => undefined);
  }

  private isSync(collection: string): boolean {
    let sync = this.syncCollections.get(collection);
    if (sync === undefined) {
      try {
        sync = this.o.core.collection(collection).replication.mode === 'sync';
      } catch {
        sync = false;
      }
      this.syncCollections.set(collection, sync);
    }
    return sync;
  }

  private pokeSoon(): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.poke();
    }, this.o.batchMs ?? 20);
  }

  /** Sends our applied version to every peer that has not seen it yet. */
  poke(): void {
    for (const p of this.peers) this.maybeSend(p, false);
  }

  private refresh(): void {
    const now = Date.now();
    for (const p of this.peers) this.maybeSend(p, now - p.lastSentMs >= this.o.refreshMs);
  }

  private maybeSend(p: PeerState, force: boolean): void {
    if (this.stopped) return;
    const applied = this.o.core.ackVersion();
    if (!force && dominates(p.queued, applied)) return;
    // A few acks may overlap: waiting a round trip for the previous one would delay a sync write
    // applied just after it by up to that round trip. Out-of-order arrival is harmless (max merge).
    if (p.inFlight >= (this.o.maxInFlight ?? 4)) return;
    p.inFlight++;
    p.queued = applied;
    p.lastSentMs = Date.now();
    const body: AckBody = { region: this.o.core.region, applied };
    let ok = false;
    // Read by the core's clock (the one its timestamps come from), just before the request goes.
    const sentAtMs = this.o.core.wallClockMs();
    void p.pool
      .request({
        path: `${new URL(p.url).pathname.replace(/\/+$/, '')}${ACK_PATH}`,
        method: 'POST',
        // An ack may be repeated or reordered safely (acks merge by maximum): let them pipeline.
        idempotent: true,
        blocking: false,
        headers: { authorization: `Bearer ${this.o.clusterSecret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: this.o.timeoutMs ?? 5000,
        bodyTimeout: this.o.timeoutMs ?? 5000,
      })
      .then(async (res) => {
        ok = res.statusCode === 200;
        if (!ok) {
          await res.body.dump();
          this.o.log.warn({ peer: p.id, status: res.statusCode }, 'ack refused');
          return;
        }
        const text = await res.body.text();
        p.confirmed = mergeVersions(p.confirmed, applied);
        let answer: unknown;
        try {
          answer = JSON.parse(text);
        } catch {
          answer = undefined;
        }
        // An answer without a clock (a peer of an older version) bounds nothing.
        const peerWallMs = answerWallMs(answer);
        if (peerWallMs !== undefined) this.o.core.observePeerClockRoundTrip(p.id, sentAtMs, peerWallMs);
      })
      .catch((e: unknown) => {
        this.o.core.notePeerUnreachable(p.id);
        this.o.log.debug({ peer: p.id, err: (e as Error).message }, 'ack failed');
      })
      .finally(() => {
        p.inFlight--;
        if (!ok) {
          // The refresh timer retries; no tight loop against a peer that is down.
          p.queued = p.confirmed;
          return;
        }
        if (!dominates(p.queued, this.o.core.ackVersion())) setImmediate(() => this.maybeSend(p, false));
      });
  }
}
