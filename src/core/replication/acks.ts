/**
 * Acknowledgements: tells every peer what this region has durably applied, as soon as it changes.
 * A few in flight per peer at most; whatever changed meanwhile goes in the next one, so the ack
 * rate adapts to the round-trip time. Acks confirm sync writes and let peers truncate their logs.
 * Each answer carries the peer's clock, which with ours before and after bounds its clock offset
 * from both sides (an NTP round trip, src/core/clock-offset.ts): no request of its own is needed.
 */
import type { Clock, TimerHandle, Timers } from '../ports.js';
import type { RegionId } from '../types.js';
import { dominates, mergeVersions, type VersionVector } from '../version.js';
import type { ReplicaCore } from './feed.js';
import { type AckBody, answerWallMs } from './protocol.js';
import type { ReplicationTransport } from './transport.js';

export interface AckSenderOptions {
  core: ReplicaCore;
  peers: readonly RegionId[];
  transport: ReplicationTransport;
  /** Durations only (refresh spacing). */
  clock: Clock;
  timers: Timers;
  /** Re-sent this often even when nothing changed, so a restarted peer learns our version. */
  refreshMs: number;
  /** An ack unanswered this long failed (default 5 s). */
  timeoutMs?: number;
  /** Acks of async-only changes wait this long to be batched (default 20 ms); sync ones go at once. */
  batchMs?: number;
  /** Acks in flight per peer at most (default 4). */
  maxInFlight?: number;
  onFailed?: (peer: RegionId, err: Error) => void;
}

interface PeerState {
  id: RegionId;
  inFlight: number;
  /** The newest version handed to a request (in flight or answered). */
  queued: VersionVector;
  /** The newest version the peer confirmed receiving. */
  confirmed: VersionVector;
  lastSentMs: number;
  /** A sync change from this peer is applied and not yet acknowledged: its writer waits. */
  urgent: boolean;
}

/**
 * @example
 *   const acks = new AckSender({ core, peers, transport, clock, timers, refreshMs: 1000 });
 *   acks.start(); // acks follow commits by themselves; poke() after a snapshot
 */
export class AckSender {
  private readonly peers: PeerState[];
  private refreshTimer: TimerHandle | undefined;
  private soon: TimerHandle | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private readonly syncCollections = new Map<string, boolean>();

  constructor(private readonly o: AckSenderOptions) {
    this.peers = o.peers.map((id) => ({
      id,
      inFlight: 0,
      queued: {},
      confirmed: {},
      lastSentMs: 0,
      urgent: false,
    }));
  }

  start(): void {
    // Remote changes committed here (from any stream, relayed or direct) are what peers wait on.
    this.unsubscribe = this.o.core.subscribe((changes) => {
      let remote = false;
      let waiting: RegionId | undefined;
      for (const c of changes) {
        if (c.origin === this.o.core.region) continue;
        remote = true;
        // A sync write waits for this ack at its origin: send it there now.
        if (waiting !== c.origin && c.payload.kind === 'doc' && this.isSync(c.payload.collection)) {
          waiting = c.origin;
          const p = this.peers.find((x) => x.id === c.origin);
          if (p) {
            p.urgent = true;
            this.maybeSend(p, false);
          }
        }
      }
      // Otherwise (and to every other peer) acks only feed log compaction and lag views: batching
      // them saves work.
      if (remote) this.pokeSoon();
    });
    this.scheduleRefresh();
    // At once, not a refresh period later: the answers are the round trips whose clock readings a
    // freshly opened core waits for before its first write.
    for (const p of this.peers) this.maybeSend(p, true);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.refreshTimer !== undefined) this.o.timers.clearTimeout(this.refreshTimer);
    if (this.soon !== undefined) this.o.timers.clearTimeout(this.soon);
  }

  /** Sends our applied version to every peer that has not seen it yet. */
  poke(): void {
    for (const p of this.peers) this.maybeSend(p, false);
  }

  private scheduleRefresh(): void {
    this.refreshTimer = this.o.timers.setTimeout(() => {
      if (this.stopped) return;
      const now = this.o.clock.nowMs();
      for (const p of this.peers) this.maybeSend(p, now - p.lastSentMs >= this.o.refreshMs);
      this.scheduleRefresh();
    }, this.o.refreshMs);
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
    if (this.soon !== undefined) return;
    this.soon = this.o.timers.setTimeout(() => {
      this.soon = undefined;
      this.poke();
    }, this.o.batchMs ?? 20);
  }

  private maybeSend(p: PeerState, force: boolean): void {
    if (this.stopped) return;
    const { core, timers } = this.o;
    const applied = core.ackVersion();
    if (!force && dominates(p.queued, applied)) return;
    // A few acks may overlap: waiting a round trip for the previous one would delay a sync write
    // applied just after it by up to that round trip. Out-of-order arrival is harmless (max merge).
    if (p.inFlight >= (this.o.maxInFlight ?? 4)) return;
    p.inFlight++;
    p.urgent = false;
    p.queued = applied;
    p.lastSentMs = this.o.clock.nowMs();
    const body: AckBody = { region: core.region, applied };
    // Read by the core's clock (the one its timestamps come from), just before the request goes.
    const sentAtMs = core.wallClockMs();
    let settled = false;
    const finish = (answer: unknown, err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      p.inFlight--;
      if (this.stopped) return;
      if (err) {
        core.notePeerUnreachable(p.id);
        this.o.onFailed?.(p.id, err);
        // The refresh timer retries; no tight loop against a peer that is down.
        p.queued = p.confirmed;
        return;
      }
      p.confirmed = mergeVersions(p.confirmed, applied);
      // An answer without a clock (a peer of an older version) bounds nothing.
      const peerWallMs = answerWallMs(answer);
      if (peerWallMs !== undefined) core.observePeerClockRoundTrip(p.id, sentAtMs, peerWallMs);
      // More was applied meanwhile: at once if a sync writer waits for it, else with the next batch.
      if (p.urgent) timers.setTimeout(() => this.maybeSend(p, false), 0);
      else if (!dominates(p.queued, core.ackVersion())) this.pokeSoon();
    };
    const timeoutMs = this.o.timeoutMs ?? 5000;
    const timer = timers.setTimeout(
      () => finish(undefined, new Error(`ack to ${p.id} unanswered after ${timeoutMs} ms`)),
      timeoutMs,
    );
    this.o.transport.sendAck(p.id, body).then(
      (answer) => finish(answer, undefined),
      (e: unknown) => finish(undefined, e instanceof Error ? e : new Error(String(e))),
    );
  }
}
