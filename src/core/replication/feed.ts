/**
 * The sending side of one replication stream: catch-up from the peer's cursor, then live changes
 * as they commit, then heartbeats when idle. Live changes are sent straight from the commit
 * notification while they follow on from what was sent; after a gap or overflow it reads the
 * log again, which is the source of truth.
 */
import type { Change } from '../change.js';
import type { Clock, Timers } from '../ports.js';
import type { RegionCore } from '../region.js';
import type { RegionId } from '../types.js';
import { dominates, mergeVersions, seqOf, type VersionVector } from '../version.js';
import { Deadline } from './deadline.js';
import type { StreamMessage, StreamRequest } from './protocol.js';
import type { StreamSink } from './transport.js';

/** What the replication driver needs of a RegionCore (a narrow view, so tests can stand in for it). */
export type ReplicaCore = Pick<
  RegionCore,
  | 'region'
  | 'version'
  | 'ackVersion'
  | 'subscribe'
  | 'pull'
  | 'forPeer'
  | 'quarantineUnsendable'
  | 'wallClockMs'
  | 'applyRemote'
  | 'applySnapshot'
  | 'onPeerAck'
  | 'observePeerClock'
  | 'observePeerClockRoundTrip'
  | 'notePeerUnreachable'
  | 'compactLog'
  | 'collection'
>;

export interface PeerFeedOptions {
  heartbeatMs: number;
  /** Durations only (heartbeat spacing); the clock readings peers see come from the core. */
  clock: Clock;
  timers: Timers;
  /** Live changes buffered at most before falling back to reading the log (default 20,000). */
  maxPending?: number;
  /** Changes per catch-up message (default 1000). */
  batchLimit?: number;
  /**
   * After a commit wakes the feed, it waits this long for more before sending (default 0: at once).
   * Fewer, larger messages under load, for up to this much more replication delay.
   */
  lingerMs?: number;
}

/**
 * @example
 *   const feed = new PeerFeed(core, 'eu-west-1', { have, relay: [] }, sink, { heartbeatMs: 1000, clock, timers });
 *   onPeerGone(() => feed.close());
 *   await feed.run();
 */
export class PeerFeed {
  private sent: VersionVector;
  private pending: Change[] = [];
  private needPull = true;
  /**
   * The log reads a snapshot that holds nothing the peer was not sent: our store has not made
   * durable yet what our log's cut assumes (a snapshot merged, still committing). Reading again at
   * once would spin; the next commit or heartbeat retries.
   */
  private pullStalled = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  /** Ends a linger early (on close only: commits during a linger join the batch). */
  private endLinger: (() => void) | undefined;
  private lastWriteMs = 0;
  /**
   * The peer's own changes up to this sequence are sent back to it: it opened the stream with a
   * cursor behind what we hold of its own origin (its disk was wiped or is an older copy), and
   * must recover them before issuing new sequence numbers. 0 when it is not behind.
   */
  private recoverOwnUpTo = 0;
  private readonly maxPending: number;
  private readonly batchLimit: number;
  private readonly have: VersionVector;
  private readonly relay: readonly RegionId[] | 'all';
  /** When the next heartbeat is due (one timer, however often commits wake the feed). */
  private readonly heartbeat: Deadline;
  /** Changes handed to the sink, for metrics and tests. */
  sentChanges = 0;

  constructor(
    private readonly core: ReplicaCore,
    readonly peer: RegionId,
    request: StreamRequest,
    private readonly sink: StreamSink,
    private readonly options: PeerFeedOptions,
  ) {
    this.have = request.have;
    this.relay = request.relay;
    this.sent = request.have;
    this.maxPending = options.maxPending ?? 20_000;
    this.batchLimit = options.batchLimit ?? 1000;
    this.heartbeat = new Deadline(options.clock, options.timers, () => this.wake?.());
  }

  close(): void {
    this.stopped = true;
    this.wake?.();
    this.endLinger?.();
  }

  get closed(): boolean {
    return this.stopped;
  }

  async run(): Promise<void> {
    const unsubscribe = this.core.subscribe((changes) => {
      if (this.stopped) return;
      for (const c of changes) this.pending.push(c);
      if (this.pending.length > this.maxPending) {
        this.pending = [];
        this.needPull = true;
      }
      this.pullStalled = false;
      this.wake?.();
    });
    let first = true;
    const peerOwn = seqOf(this.core.version, this.peer);
    if (peerOwn > seqOf(this.have, this.peer)) this.recoverOwnUpTo = peerOwn;
    try {
      await this.send({
        t: 'hello',
        region: this.core.region,
        version: this.core.version,
        heartbeatMs: this.options.heartbeatMs,
        wallMs: this.core.wallClockMs(),
      });
      while (!this.stopped) {
        if (this.needPull && !this.pullStalled) {
          // Only the first read uses the peer's own cursor, which is what it has durably applied.
          const res = await this.core.pull(this.peer, first ? this.have : this.sent, this.batchLimit, {
            ack: first,
          });
          first = false;
          if (this.stopped) break;
          if (res.kind === 'snapshot') {
            if (dominates(this.sent, res.snapshot.applied)) {
              this.pullStalled = true;
              continue;
            }
            await this.send({ t: 'snapshot', snapshot: res.snapshot, omitted: res.omittedCollections });
            this.sent = mergeVersions(this.sent, res.snapshot.applied);
            continue;
          }
          if (res.changes.length === 0) {
            this.needPull = false;
            continue;
          }
          await this.sendChanges(res.changes);
          continue;
        }
        if (!this.needPull && this.pending.length > 0 && (this.options.lingerMs ?? 0) > 0) {
          await this.linger(this.options.lingerMs ?? 0);
          if (this.stopped || this.needPull) continue;
        }
        const batch = this.needPull ? [] : this.pending;
        if (!this.needPull) this.pending = [];
        if (batch.length > 0) {
          const out: Change[] = [];
          // Copied once per batch, not per change: this runs for every commit of every peer.
          let sent: Record<RegionId, number> | undefined;
          for (const c of batch) {
            const have = (sent ?? this.sent)[c.origin] ?? 0;
            if (c.seq <= have) continue;
            if (c.seq !== have + 1) {
              this.needPull = true;
              break;
            }
            out.push(c);
            sent ??= { ...this.sent };
            sent[c.origin] = c.seq;
          }
          if (sent) this.sent = sent;
          await this.sendFiltered(out);
          continue;
        }
        const idleMs = this.options.heartbeatMs - (this.options.clock.nowMs() - this.lastWriteMs);
        if (idleMs <= 0) {
          await this.send({
            t: 'hb',
            version: this.core.version,
            atMs: this.options.clock.nowMs(),
            wallMs: this.core.wallClockMs(),
          });
          this.pullStalled = false;
          continue;
        }
        await this.idle();
      }
    } finally {
      unsubscribe();
      this.heartbeat.stop();
      this.stopped = true;
    }
  }

  /** Waits until a commit wakes the feed or a heartbeat is due. */
  private idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.heartbeat.set(this.lastWriteMs + this.options.heartbeatMs);
    });
  }

  private linger(ms: number): Promise<void> {
    const { timers } = this.options;
    return new Promise<void>((resolve) => {
      const done = () => {
        timers.clearTimeout(timer);
        this.endLinger = undefined;
        resolve();
      };
      const timer = timers.setTimeout(done, ms);
      this.endLinger = done;
    });
  }

  /** Advances the cursor over changes read from the log and sends those the peer should get. */
  private async sendChanges(changes: readonly Change[]): Promise<void> {
    let sent = this.sent;
    for (const c of changes) if (c.seq > seqOf(sent, c.origin)) sent = { ...sent, [c.origin]: c.seq };
    this.sent = sent;
    await this.sendFiltered(changes);
  }

  private async sendFiltered(changes: readonly Change[]): Promise<void> {
    // The peer already has its own changes (unless it is recovering them); residency filtering
    // happens per change.
    const relay = this.relay;
    const self = this.core.region;
    const peer = this.peer;
    const out: Change[] = [];
    for (const c of changes) {
      if (
        c.origin === peer
          ? c.seq > this.recoverOwnUpTo
          : c.origin !== self && relay !== 'all' && !relay.includes(c.origin)
      )
        continue;
      out.push(this.core.forPeer(c, peer));
    }
    if (out.length === 0) return;
    this.sentChanges += out.length;
    await this.send({ t: 'changes', changes: out, wallMs: this.core.wallClockMs() });
  }

  private async send(m: StreamMessage): Promise<void> {
    if (this.stopped) return;
    this.lastWriteMs = this.options.clock.nowMs();
    let ready: boolean;
    try {
      ready = this.sink.write(m);
    } catch (e) {
      if (m.t !== 'changes') throw e;
      ready = this.sink.write({ ...m, changes: m.changes.map((c) => this.sendable(c)) });
    }
    if (!ready) await this.sink.drained();
  }

  /**
   * The change, or an empty placeholder for one that cannot be serialised (stored before the core
   * checked values): the peer moves past it, so one bad change cannot end the stream on every
   * reconnect. The core quarantines and reports it.
   */
  private sendable(c: Change): Change {
    try {
      JSON.stringify(c);
      return c;
    } catch (e) {
      void this.core.quarantineUnsendable(this.peer, c, (e as Error).message).catch(() => undefined);
      return { origin: c.origin, seq: c.seq, hlc: c.hlc, payload: { kind: 'withheld', allowed: [] } };
    }
  }
}
