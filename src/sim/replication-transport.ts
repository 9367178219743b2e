/**
 * The replication transport over the simulated network: the core driver's port
 * (src/core/replication/transport.ts), as the node's HTTP transport is over TCP. A stream is a
 * sequence of numbered segments, delivered in order and once (TCP's numbering: duplicates dropped,
 * reordered ones held until the gap fills). A segment the network loses or cuts at once is sent again
 * after a retransmission timeout that doubles, as TCP does; after `MAX_RETRIES` the stream is reset.
 * A segment cut in flight is never seen again: the stream stalls and the driver's silence timeout
 * ends it, as with a cut cable. A message to a crashed process is answered with a reset by its host.
 */
import type { AckAnswer, AckBody, StreamMessage, StreamRequest } from '../core/replication/protocol.js';
import type { ReplicationTransport, StreamSession, StreamSink } from '../core/replication/transport.js';
import type { RegionId } from '../core/types.js';
import type { Envelope, Message, Network, StreamSegment } from './network.js';
import type { Owner, SimEvent, VirtualTime } from './time.js';

/** TCP's minimum retransmission timeout (RFC 6298 says 1 s; Linux uses 200 ms). */
const RTO_MS = 200;
const MAX_RETRIES = 6;
/** An ack request whose answer never comes is forgotten after this long (the driver gave up at 5 s). */
const ACK_FORGET_MS = 10_000;
const ALWAYS = (): boolean => true;

/** The serving side, the region's replication driver (absent while it is not running). */
export interface StreamServer {
  serve(
    peer: RegionId,
    request: StreamRequest,
    sink: StreamSink,
  ): { feed: { close(): void }; done: Promise<void> };
  receiveAck(body: AckBody): AckAnswer;
}

interface Inbound {
  peer: RegionId;
  expected: number;
  held: Map<number, StreamSegment>;
  deliver: (m: StreamMessage) => Promise<void> | void;
  pumping: boolean;
  ended: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface Outbound {
  peer: RegionId;
  stream: number;
  next: number;
  closed: boolean;
  feed: { close(): void } | undefined;
  /** For retransmissions: whether the stream still wants them, and what to do when they run out. */
  open: () => boolean;
  reset: () => void;
}

/**
 * @example
 *   const transport = new SimTransport('us-east-1', net, time, owner, incarnation);
 *   const driver = new ReplicationDriver({ core, peers, transport, ... });
 *   transport.server = driver;
 *   net.onDeliver = (env) => transport.receive(env);
 */
export class SimTransport implements ReplicationTransport {
  server: StreamServer | undefined;
  private nextStream: number;
  private nextReq = 1;
  private readonly inbound = new Map<number, Inbound>();
  /** Streams served, by opener and stream id. */
  private readonly outbound = new Map<RegionId, Map<number, Outbound>>();
  /** Ack requests awaiting their answer, each with the event that forgets it (cancelled on answer). */
  private readonly acks = new Map<
    number,
    { resolve: (a: unknown) => void; reject: (e: Error) => void; forget: SimEvent | undefined }
  >();

  constructor(
    private readonly self: RegionId,
    private readonly net: Network,
    private readonly time: VirtualTime,
    private readonly owner: Owner,
    incarnation: number,
  ) {
    // Unique across restarts, so a peer never mistakes a new stream for one of a past life.
    this.nextStream = incarnation * 1_000_000 + 1;
  }

  // ---------------------------------------------------------------- receiving side (the link's)

  openStream(
    peer: RegionId,
    request: StreamRequest,
    deliver: (m: StreamMessage) => Promise<void> | void,
  ): StreamSession {
    const stream = this.nextStream++;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const s: Inbound = {
      peer,
      expected: 0,
      held: new Map(),
      deliver,
      pumping: false,
      ended: false,
      resolve,
      reject,
    };
    this.inbound.set(stream, s);
    this.sendReliably(peer, { type: 'open', stream, request }, () => !s.ended);
    return {
      done,
      close: (reason) => {
        if (s.ended) return;
        this.endInbound(stream, s, new Error(reason));
        this.sendReliably(peer, { type: 'close', stream, opener: this.self, reason }, ALWAYS);
      },
    };
  }

  private endInbound(stream: number, s: Inbound, err: Error | undefined): void {
    if (s.ended) return;
    s.ended = true;
    s.held.clear();
    this.inbound.delete(stream);
    if (err) s.reject(err);
    else s.resolve();
  }

  private onSegment(from: RegionId, seg: StreamSegment): void {
    const s = this.inbound.get(seg.stream);
    if (!s || s.peer !== from) {
      // A stream we no longer have (closed, or opened by a past life): reset it.
      this.net.send(this.self, from, {
        type: 'close',
        stream: seg.stream,
        opener: this.self,
        reason: 'reset',
      });
      return;
    }
    if (seg.n < s.expected) return;
    if (seg.n === s.expected && !s.pumping && s.held.size === 0) {
      // In order and nothing waiting, as almost every segment: no queue.
      s.expected++;
      this.deliverOne(seg.stream, s, seg);
      return;
    }
    if (s.held.has(seg.n)) return;
    s.held.set(seg.n, seg);
    void this.pump(seg.stream, s);
  }

  /** Hands one segment over; the driver may answer with a promise (backpressure): queue behind it. */
  private deliverOne(stream: number, s: Inbound, seg: StreamSegment): void {
    let pending: Promise<void> | void;
    try {
      pending = s.deliver(seg);
    } catch (e) {
      this.fail(stream, s, e);
      return;
    }
    if (!pending) return;
    s.pumping = true;
    pending.then(
      () => {
        s.pumping = false;
        void this.pump(stream, s);
      },
      (e: unknown) => {
        s.pumping = false;
        this.fail(stream, s, e);
      },
    );
  }

  private fail(stream: number, s: Inbound, e: unknown): void {
    if (!this.owner.alive || s.ended) return;
    const err = e instanceof Error ? e : new Error(String(e));
    this.endInbound(stream, s, err);
    this.sendReliably(s.peer, { type: 'close', stream, opener: this.self, reason: err.message }, ALWAYS);
  }

  /** Hands held segments to the driver in order, one at a time (its backpressure). */
  private async pump(stream: number, s: Inbound): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    try {
      for (;;) {
        if (s.ended || !this.owner.alive) return;
        const seg = s.held.get(s.expected);
        if (!seg) return;
        s.held.delete(s.expected);
        s.expected++;
        const pending = s.deliver(seg);
        if (pending) await pending;
      }
    } catch (e) {
      this.fail(stream, s, e);
    } finally {
      s.pumping = false;
    }
  }

  // ---------------------------------------------------------------- serving side (the feed's)

  private onOpen(from: RegionId, stream: number, request: StreamRequest): void {
    let served = this.outbound.get(from);
    if (served?.has(stream)) return; // a retransmitted or duplicated open
    const server = this.server;
    if (!server) {
      this.net.send(this.self, from, { type: 'close', stream, opener: from, reason: 'not serving' });
      return;
    }
    if (!served) {
      served = new Map();
      this.outbound.set(from, served);
    }
    const o: Outbound = {
      peer: from,
      stream,
      next: 0,
      closed: false,
      feed: undefined,
      open: () => !o.closed,
      reset: () => this.endOutbound(o, 'retransmissions exhausted'),
    };
    served.set(stream, o);
    const sink: StreamSink = {
      write: (m) => {
        if (o.closed) return true;
        const seg = { ...m, type: m.t, stream, n: o.next++ } as StreamSegment;
        this.sendReliably(from, seg, o.open, o.reset);
        return true;
      },
      drained: async () => undefined,
    };
    const { feed, done } = server.serve(from, request, sink);
    o.feed = feed;
    void done.then(() => {
      // The feed ended on its own (not closed by the peer): tell the receiver.
      if (!o.closed && this.owner.alive) {
        this.endOutbound(o, 'feed ended');
        this.sendReliably(from, { type: 'close', stream, opener: from, reason: 'feed ended' }, ALWAYS);
      }
    });
  }

  private endOutbound(o: Outbound, _reason: string): void {
    if (o.closed) return;
    o.closed = true;
    o.feed?.close();
    const served = this.outbound.get(o.peer);
    served?.delete(o.stream);
    if (served?.size === 0) this.outbound.delete(o.peer);
  }

  // ---------------------------------------------------------------- acknowledgements

  sendAck(peer: RegionId, body: AckBody): Promise<unknown> {
    const reqId = this.nextReq++;
    return new Promise((resolve, reject) => {
      const waiting = { resolve, reject, forget: undefined as SimEvent | undefined };
      this.acks.set(reqId, waiting);
      this.sendReliably(peer, { type: 'ack', reqId, body }, () => this.acks.has(reqId));
      // Cancelled when the answer comes, as almost all do: a dead event per ack cost a queue slot
      // and a turn of the event loop 10 s later.
      waiting.forget = this.time.after(
        ACK_FORGET_MS,
        () => {
          const waiting = this.acks.get(reqId);
          if (!waiting) return;
          this.acks.delete(reqId);
          waiting.reject(new Error(`no answer from ${peer}`));
        },
        this.owner,
      );
    });
  }

  // ---------------------------------------------------------------- the wire

  /** A message from the network for this (running) process. */
  receive(env: Envelope): void {
    const m = env.msg;
    switch (m.type) {
      case 'open':
        this.onOpen(env.from, m.stream, m.request);
        return;
      case 'close':
        if (m.opener === this.self) {
          const s = this.inbound.get(m.stream);
          if (s && s.peer === env.from)
            this.endInbound(m.stream, s, new Error(`closed by ${env.from}: ${m.reason}`));
        } else {
          const o = this.outbound.get(env.from)?.get(m.stream);
          if (o) this.endOutbound(o, m.reason);
        }
        return;
      case 'ack': {
        if (!this.server) return;
        const answer = this.server.receiveAck(m.body);
        this.sendReliably(env.from, { type: 'ack-answer', reqId: m.reqId, answer }, ALWAYS);
        return;
      }
      case 'ack-answer': {
        const waiting = this.acks.get(m.reqId);
        if (!waiting) return;
        this.acks.delete(m.reqId);
        if (waiting.forget) this.time.cancel(waiting.forget);
        waiting.resolve(m.answer);
        return;
      }
      default:
        this.onSegment(env.from, m);
    }
  }

  /**
   * Sends `msg`, and again after a doubling timeout while the network loses or cuts it at once and
   * `wanted()` holds; `gaveUp` runs when the retries are exhausted.
   */
  private sendReliably(
    to: RegionId,
    msg: Message,
    wanted: () => boolean,
    gaveUp?: () => void,
    attempt = 0,
  ): void {
    if (this.net.send(this.self, to, msg)) return;
    if (attempt >= MAX_RETRIES) {
      gaveUp?.();
      return;
    }
    this.time.after(
      RTO_MS * 2 ** attempt,
      () => {
        if (wanted()) this.sendReliably(to, msg, wanted, gaveUp, attempt + 1);
      },
      this.owner,
    );
  }
}

/**
 * What the host of a crashed (or not yet started) process answers: a reset for a stream message or
 * an open, as a kernel answers a port nobody listens on; nothing for acks (their sender times out).
 */
export function refuseAsHost(net: Network, env: Envelope): void {
  const m = env.msg;
  if (m.type === 'open') {
    net.send(env.to, env.from, { type: 'close', stream: m.stream, opener: env.from, reason: 'refused' });
  } else if (m.type !== 'close' && m.type !== 'ack' && m.type !== 'ack-answer') {
    net.send(env.to, env.from, { type: 'close', stream: m.stream, opener: env.to, reason: 'reset' });
  }
}
