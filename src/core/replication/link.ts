/**
 * The receiving side of replication from one peer: keeps a stream open to it, applies what arrives
 * through the core (group-committed, in order), and reconnects with backoff from the core's own
 * applied version, so downtime on either side ends in catch-up (or a snapshot). A stream silent for
 * three heartbeats is dead (a cut link drops no FIN) and is closed here, whatever the transport.
 */
import { Backoff } from '../backoff.js';
import type { Clock, Random, TimerHandle, Timers } from '../ports.js';
import type { RegionId } from '../types.js';
import { seqOf, type VersionVector } from '../version.js';
import { Deadline } from './deadline.js';
import type { ReplicaCore } from './feed.js';
import { type StreamMessage, senderWallMs } from './protocol.js';
import type { ReplicationTransport, StreamSession } from './transport.js';

export interface PeerLinkOptions {
  core: ReplicaCore;
  peer: RegionId;
  transport: ReplicationTransport;
  /** Durations only (silence, downtime); the core's clock is what peers' readings are compared with. */
  clock: Clock;
  timers: Timers;
  random: Random;
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** The first message (hello) is awaited this long (default: three heartbeats, at least 5 s). */
  connectTimeoutMs?: number;
  /** Applies in flight at most before reading on (backpressure onto the stream). */
  maxInFlight?: number;
  /** Origins this peer should relay to us, asked for when a session opens (default: none). */
  relayFor?: () => RegionId[];
  /** After each durable apply, so acknowledgements go out at once. */
  onApplied?: () => void;
  onSnapshot?: (peer: RegionId) => void;
  onReconnect?: (peer: RegionId) => void;
  onConnected?: (peer: RegionId, relay: readonly RegionId[]) => void;
  onFailed?: (peer: RegionId, err: Error) => void;
}

/**
 * @example
 *   const link = new PeerLink({ core, peer: 'eu-west-1', transport, clock, timers, random,
 *     heartbeatMs: 1000, reconnectMinMs: 100, reconnectMaxMs: 5000 });
 *   link.start();
 *   await link.stop();
 */
export class PeerLink {
  readonly peer: RegionId;
  /** The relay set the current session asked for. */
  relaying: readonly RegionId[] = [];
  /** Since when the stream has been down (undefined while connected). */
  downSinceMs: number | undefined;
  connected = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private current: StreamSession | undefined;
  private refreshRequested = false;
  private wakeSleep: (() => void) | undefined;
  /** What the peer said it has applied, from hello, heartbeats and the changes it sent. */
  private peerVersion: VersionVector = {};

  constructor(private readonly o: PeerLinkOptions) {
    this.peer = o.peer;
    this.downSinceMs = o.clock.nowMs();
    this.backoff = new Backoff({ baseMs: o.reconnectMinMs, maxMs: o.reconnectMaxMs }, o.random);
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.close('replication stopped');
    this.wakeSleep?.();
    await this.running;
  }

  /** Re-opens the stream at once (to ask for a different relay set). */
  refresh(): void {
    if (!this.current) return;
    this.refreshRequested = true;
    this.current.close('relay set changed');
  }

  /** Changes of the peer's own origin that it has and we have not applied. */
  lagChanges(): number {
    return Math.max(0, seqOf(this.peerVersion, this.peer) - seqOf(this.o.core.version, this.peer));
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    let refreshing = false;
    while (!this.stopped) {
      if (attempt++ > 0) {
        this.o.onReconnect?.(this.peer);
        await this.sleep(refreshing ? 0 : this.backoff.next());
        if (this.stopped) break;
      }
      refreshing = false;
      this.refreshRequested = false;
      try {
        await this.session();
      } catch (e) {
        if (this.refreshRequested && !this.stopped) refreshing = true;
        else if (!this.stopped) {
          this.o.core.notePeerUnreachable(this.peer);
          this.o.onFailed?.(this.peer, e instanceof Error ? e : new Error(String(e)));
        }
      } finally {
        this.current = undefined;
        if (this.connected) this.downSinceMs = this.o.clock.nowMs();
        this.connected = false;
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    const { timers } = this.o;
    return new Promise((resolve) => {
      let t: TimerHandle | undefined;
      const done = () => {
        if (t !== undefined) timers.clearTimeout(t);
        this.wakeSleep = undefined;
        resolve();
      };
      t = timers.setTimeout(done, ms);
      this.wakeSleep = done;
    });
  }

  /** One connection: open from our applied version, apply until it ends or fails. */
  private async session(): Promise<void> {
    const { core, clock } = this.o;
    this.relaying = [...(this.o.relayFor?.() ?? [])].sort();
    /** Applies handed to the core and not yet settled (they commit in order, in shared batches). */
    const inFlight = new Set<Promise<unknown>>();
    const maxInFlight = this.o.maxInFlight ?? 64;
    const silenceMs = this.o.heartbeatMs * 3;
    let failure: unknown;
    let session: StreamSession | undefined;
    let limitMs = this.o.connectTimeoutMs ?? Math.max(silenceMs, 5000);
    const silence = new Deadline(clock, this.o.timers, () =>
      session?.close(`no message from ${this.peer} in ${limitMs} ms`),
    );
    const track = (p: Promise<unknown>) => {
      const q: Promise<unknown> = p.then(
        () => {
          inFlight.delete(q);
          this.o.onApplied?.();
        },
        (e) => {
          inFlight.delete(q);
          failure ??= e;
        },
      );
      inFlight.add(q);
    };
    const afterApply = async (pending: Promise<void> | undefined): Promise<void> => {
      if (pending) await pending;
      while (inFlight.size > maxInFlight) await inFlight.values().next().value;
      if (failure) throw failure;
    };
    // Synchronous unless it must wait (a snapshot, too many applies in flight): one message costs
    // no promise of its own, which the simulator notices at thousands of messages per second.
    const deliver = (m: StreamMessage): Promise<void> | undefined => {
      limitMs = silenceMs;
      silence.set(clock.nowMs() + silenceMs);
      if (!this.connected) {
        this.connected = true;
        this.downSinceMs = undefined;
        this.o.onConnected?.(this.peer, this.relaying);
      }
      const pending = this.handle(m, track, inFlight);
      this.backoff.reset();
      if (pending || inFlight.size > maxInFlight) return afterApply(pending);
      if (failure) throw failure;
      return undefined;
    };
    session = this.o.transport.openStream(
      this.peer,
      { have: core.ackVersion(), relay: this.relaying },
      deliver,
    );
    this.current = session;
    silence.set(clock.nowMs() + limitMs);
    if (this.stopped) session.close('replication stopped');
    try {
      await session.done;
    } finally {
      silence.stop();
      await Promise.all([...inFlight]);
    }
    if (failure) throw failure;
  }

  /** Applies one message; returns a promise only when the stream must wait for it (a snapshot). */
  private handle(
    m: StreamMessage,
    track: (p: Promise<unknown>) => void,
    inFlight: Set<Promise<unknown>>,
  ): Promise<void> | undefined {
    const { core } = this.o;
    // Read on arrival: late by an unknown one-way delay, so only a lower bound of the peer's offset.
    const wallMs = senderWallMs(m);
    if (wallMs !== undefined) core.observePeerClock(this.peer, wallMs);
    switch (m.t) {
      case 'hello':
        // The peer's applied version is also its view of our own changes, which a restarted node
        // needs before it issues sequence numbers again (RegionCore.recoverOwnOriginFrom).
        core.onPeerAck(this.peer, m.version);
        this.notePeerVersion(m.version);
        return undefined;
      case 'hb':
        this.notePeerVersion(m.version);
        return undefined;
      case 'changes': {
        // Not awaited: consecutive applies queue in order and share one group commit.
        let own = 0;
        for (const c of m.changes) if (c.origin === this.peer && c.seq > own) own = c.seq;
        if (own > 0) this.notePeerVersion({ [this.peer]: own });
        track(core.applyRemote(this.peer, m.changes));
        return undefined;
      }
      case 'snapshot':
        return (async () => {
          await Promise.all([...inFlight]);
          await core.applySnapshot(this.peer, m.snapshot, m.omitted);
          this.notePeerVersion(m.snapshot.applied);
          this.o.onSnapshot?.(this.peer);
          this.o.onApplied?.();
        })();
    }
  }

  private notePeerVersion(v: VersionVector): void {
    const s = seqOf(v, this.peer);
    if (s > seqOf(this.peerVersion, this.peer)) this.peerVersion = { ...this.peerVersion, [this.peer]: s };
  }
}
