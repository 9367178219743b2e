/**
 * Acknowledgements: tells every peer what this region has durably applied, as soon as it changes.
 * One request in flight per peer; whatever changed meanwhile goes in the next one, so the ack rate
 * adapts to the round-trip time. Acks confirm sync writes and let peers truncate their logs.
 */
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import type { RegionCore } from '../../core/region.js';
import type { RegionId } from '../../core/types.js';
import { dominates, type VersionVector } from '../../core/version.js';
import type { Logger } from '../logger.js';
import { ACK_PATH, type AckBody } from './protocol.js';

export interface AckSenderOptions {
  core: RegionCore;
  peers: readonly { id: RegionId; url: string }[];
  clusterSecret: string;
  dispatcher: Dispatcher;
  log: Logger;
  /** Re-sent this often even when nothing changed, so a restarted peer learns our version. */
  refreshMs: number;
  timeoutMs?: number;
}

interface PeerState {
  id: RegionId;
  url: string;
  inFlight: boolean;
  /** What the peer last confirmed receiving from us. */
  sent: VersionVector;
  lastSentMs: number;
}

/**
 * @example
 *   const acks = new AckSender({ core, peers, clusterSecret, dispatcher, log, refreshMs: 1000 });
 *   acks.start(); // then acks.poke() after every durable apply
 */
export class AckSender {
  private readonly peers: PeerState[];
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly o: AckSenderOptions) {
    this.peers = o.peers.map((p) => ({ ...p, inFlight: false, sent: {}, lastSentMs: 0 }));
  }

  start(): void {
    // Remote changes committed here (from any stream, relayed or direct) are what peers wait on.
    this.unsubscribe = this.o.core.subscribe((changes) => {
      if (changes.some((c) => c.origin !== this.o.core.region)) this.poke();
    });
    this.timer = setInterval(() => this.refresh(), this.o.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
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
    if (this.stopped || p.inFlight) return;
    const applied = this.o.core.ackVersion();
    if (!force && dominates(p.sent, applied)) return;
    p.inFlight = true;
    p.lastSentMs = Date.now();
    const body: AckBody = { region: this.o.core.region, applied };
    let ok = false;
    void request(`${p.url}${ACK_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.o.clusterSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: this.o.dispatcher,
      headersTimeout: this.o.timeoutMs ?? 5000,
      bodyTimeout: this.o.timeoutMs ?? 5000,
    })
      .then(async (res) => {
        await res.body.dump();
        ok = res.statusCode === 200;
        if (ok) p.sent = applied;
        else this.o.log.warn({ peer: p.id, status: res.statusCode }, 'ack refused');
      })
      .catch((e: unknown) => {
        this.o.log.debug({ peer: p.id, err: (e as Error).message }, 'ack failed');
      })
      .finally(() => {
        p.inFlight = false;
        // Anything applied while this one was in flight goes out now; after a failure, the timer retries.
        if (ok && !dominates(p.sent, this.o.core.ackVersion())) setImmediate(() => this.maybeSend(p, false));
      });
  }
}
