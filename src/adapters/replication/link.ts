/**
 * The receiving side of replication from one peer: keeps a stream open to it, applies what arrives
 * through the core (group-committed, in order), and reconnects with backoff from the core's own
 * applied version, so downtime on either side ends in catch-up (or a snapshot).
 */
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import type { RegionCore } from '../../core/region.js';
import type { RegionId } from '../../core/types.js';
import { encodeToken, seqOf, type VersionVector } from '../../core/version.js';
import type { Logger } from '../logger.js';
import { Backoff } from './backoff.js';
import { decodeMessage, PEER_HEADER, STREAM_PATH, type StreamMessage, senderWallMs } from './protocol.js';

export interface PeerLinkOptions {
  core: RegionCore;
  peer: RegionId;
  /** Base URL of the peer's node as this region reaches it (through the WAN emulator in the lab). */
  url: string;
  clusterSecret: string;
  dispatcher: Dispatcher;
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  log: Logger;
  /** After each durable apply, so acknowledgements go out at once. */
  onApplied?: () => void;
  onSnapshot?: (peer: RegionId) => void;
  onReconnect?: (peer: RegionId) => void;
  /** Applies in flight at most before reading on (backpressure onto the TCP stream). */
  maxInFlight?: number;
  /** Origins this peer should relay to us, asked for when a session opens (default: none). */
  relayFor?: () => RegionId[];
}

export class PeerLink {
  readonly peer: RegionId;
  private controller = new AbortController();
  private session_: AbortController | undefined;
  /** The relay set the current session asked for. */
  relaying: readonly RegionId[] = [];
  /** Since when the stream has been down (undefined while connected). */
  downSinceMs: number | undefined = Date.now();
  private stopped = false;
  private running: Promise<void> | undefined;
  private backoff: Backoff;
  private refreshing = false;
  /** What the peer said it has applied, from hello, heartbeats and the changes it sent. */
  private peerVersion: VersionVector = {};
  connected = false;

  constructor(private readonly o: PeerLinkOptions) {
    this.peer = o.peer;
    this.backoff = new Backoff({ minMs: o.reconnectMinMs, maxMs: o.reconnectMaxMs });
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller.abort();
    await this.running;
  }

  /** Re-opens the stream at once (to ask for a different relay set). */
  refresh(): void {
    this.session_?.abort();
  }

  /** Changes of the peer's own origin that it has and we have not applied. */
  lagChanges(): number {
    return Math.max(0, seqOf(this.peerVersion, this.peer) - seqOf(this.o.core.version, this.peer));
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      if (attempt++ > 0) {
        this.o.onReconnect?.(this.peer);
        await this.sleep(this.refreshing ? 0 : this.backoff.next());
        if (this.stopped) break;
      }
      this.refreshing = false;
      const ac = new AbortController();
      this.session_ = ac;
      const onStop = () => ac.abort();
      this.controller.signal.addEventListener('abort', onStop);
      try {
        await this.session(ac.signal);
      } catch (e) {
        if (ac.signal.aborted && !this.stopped) this.refreshing = true;
        else if (!this.stopped) {
          this.o.core.notePeerUnreachable(this.peer);
          this.o.log.debug({ peer: this.peer, err: (e as Error).message }, 'replication stream failed');
        }
      } finally {
        this.controller.signal.removeEventListener('abort', onStop);
        if (this.connected) this.downSinceMs = Date.now();
        this.connected = false;
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.controller.signal;
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  /** One connection: open from our applied version, apply until it ends or fails. */
  private async session(signal: AbortSignal): Promise<void> {
    const { core } = this.o;
    const have = encodeToken(core.ackVersion());
    this.relaying = [...(this.o.relayFor?.() ?? [])].sort();
    const res = await request(`${this.o.url}${STREAM_PATH}?have=${have}&relay=${this.relaying.join(',')}`, {
      method: 'GET',
      headers: { authorization: `Bearer ${this.o.clusterSecret}`, [PEER_HEADER]: core.region },
      dispatcher: this.o.dispatcher,
      signal,
      // A stream that is silent for three heartbeats is dead (a cut link drops no FIN).
      bodyTimeout: this.o.heartbeatMs * 3,
      headersTimeout: Math.max(this.o.heartbeatMs * 3, 5000),
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      throw new Error(`stream from ${this.peer} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    this.connected = true;
    this.downSinceMs = undefined;
    this.o.log.info({ peer: this.peer, relay: this.relaying }, 'replication stream connected');
    const inFlight: Promise<unknown>[] = [];
    const maxInFlight = this.o.maxInFlight ?? 64;
    let failure: unknown;
    const track = (p: Promise<unknown>) => {
      const q = p.then(
        () => this.o.onApplied?.(),
        (e) => {
          failure ??= e;
        },
      );
      inFlight.push(q);
    };
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8');
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf('\n');
          if (line.length === 0) continue;
          await this.handle(decodeMessage(line), track, inFlight);
          if (failure) throw failure;
          this.backoff.reset();
        }
        while (inFlight.length > maxInFlight) await inFlight.shift();
        if (failure) throw failure;
      }
    } finally {
      await Promise.all(inFlight);
      res.body.destroy();
    }
    if (failure) throw failure;
  }

  private async handle(
    m: StreamMessage,
    track: (p: Promise<unknown>) => void,
    inFlight: Promise<unknown>[],
  ): Promise<void> {
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
        return;
      case 'hb':
        this.notePeerVersion(m.version);
        return;
      case 'changes': {
        // Not awaited: consecutive applies queue in order and share one group commit.
        let own = 0;
        for (const c of m.changes) if (c.origin === this.peer && c.seq > own) own = c.seq;
        if (own > 0) this.notePeerVersion({ [this.peer]: own });
        track(core.applyRemote(this.peer, m.changes));
        return;
      }
      case 'snapshot':
        await Promise.all(inFlight.splice(0));
        await core.applySnapshot(this.peer, m.snapshot, m.omitted);
        this.notePeerVersion(m.snapshot.applied);
        this.o.onSnapshot?.(this.peer);
        this.o.onApplied?.();
        return;
    }
  }

  private notePeerVersion(v: VersionVector): void {
    const s = seqOf(v, this.peer);
    if (s > seqOf(this.peerVersion, this.peer)) this.peerVersion = { ...this.peerVersion, [this.peer]: s };
  }
}
