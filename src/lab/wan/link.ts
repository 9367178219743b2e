/**
 * One directed WAN link: a TCP listener standing for "region A's way to region B". Every
 * connection accepted is forwarded to B's target through two delay pipes (A->B and B->A), and
 * the link can be cut (connections reset) or partitioned (traffic held) and healed.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DelayPipe, type PathConditions } from './pipe.js';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * `up`: traffic flows. `cut`: like a link whose router answers with resets: existing connections
 * are reset, new ones are accepted and reset at once. `partition`: a blackhole: nothing is
 * forwarded and new connections hang (unanswered SYNs); on heal everything held is delivered.
 */
export type LinkState = 'up' | 'cut' | 'partition';

export interface LinkStats {
  from: string;
  to: string;
  listen: HostPort;
  target: HostPort;
  state: LinkState;
  /** Connections open now (including ones held by a partition). */
  activeConnections: number;
  acceptedConnections: number;
  /** Connections reset because the link was cut. */
  resetConnections: number;
  /** Bytes delivered from `from` to `to`, and back. */
  bytesForward: number;
  bytesReverse: number;
}

export interface LinkOptions {
  from: string;
  to: string;
  listen: HostPort;
  target: HostPort;
  /** Conditions of the path from -> to (forward) and to -> from (reverse), read per chunk. */
  forward: () => PathConditions;
  reverse: () => PathConditions;
  random: () => number;
  /** Emulate the TCP handshake: a new connection's first bytes arrive one RTT later (default true). */
  handshake: boolean;
}

interface Conn {
  client: Socket;
  upstream?: Socket;
  pipes: DelayPipe[];
}

export class Link {
  state: LinkState = 'up';
  private readonly server: Server;
  private readonly conns = new Set<Conn>();
  /** Connections accepted during a partition, waiting for the heal to "arrive". */
  private readonly waiting = new Set<Conn>();
  private counts = { accepted: 0, reset: 0, bytesForward: 0, bytesReverse: 0 };
  private address: HostPort;

  constructor(private readonly o: LinkOptions) {
    this.address = o.listen;
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
  }

  async listen(): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.listen.port, this.o.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    if (a && typeof a === 'object') this.address = { host: a.address, port: a.port };
    return this.address;
  }

  private accept(client: Socket): void {
    this.counts.accepted++;
    client.on('error', () => {});
    if (this.state === 'cut') {
      this.counts.reset++;
      client.resetAndDestroy();
      return;
    }
    const conn: Conn = { client, pipes: [] };
    this.conns.add(conn);
    client.once('close', () => this.closed(conn));
    if (this.state === 'partition') {
      client.pause();
      this.waiting.add(conn);
      return;
    }
    this.connect(conn);
  }

  /** Opens the upstream connection and the two pipes; `now` is when the SYN "leaves" the source. */
  private connect(conn: Conn): void {
    const now = performance.now();
    const fwd = this.o.forward().delayMs;
    const rev = this.o.reverse().delayMs;
    const { client } = conn;
    const upstream = createConnection({ ...this.o.target, allowHalfOpen: true, noDelay: true });
    conn.upstream = upstream;
    upstream.on('error', () => {});
    upstream.once('close', () => this.closed(conn));
    const hs = this.o.handshake;
    // SYN takes fwd, SYN-ACK takes rev: the client's first bytes leave after one RTT; the
    // server's first bytes leave once the SYN has reached it.
    conn.pipes = [
      new DelayPipe({
        src: client,
        dst: upstream,
        conditions: this.o.forward,
        random: this.o.random,
        notBeforeMs: hs ? now + fwd + rev : now,
        onDeliver: (n) => {
          this.counts.bytesForward += n;
        },
      }),
      new DelayPipe({
        src: upstream,
        dst: client,
        conditions: this.o.reverse,
        random: this.o.random,
        notBeforeMs: hs ? now + fwd : now,
        onDeliver: (n) => {
          this.counts.bytesReverse += n;
        },
      }),
    ];
    client.resume();
  }

  private closed(conn: Conn): void {
    const gone = conn.client.destroyed && (!conn.upstream || conn.upstream.destroyed);
    if (gone) {
      this.conns.delete(conn);
      this.waiting.delete(conn);
      for (const p of conn.pipes) p.stop();
    }
  }

  private resetAll(): void {
    for (const c of this.conns) {
      this.counts.reset++;
      for (const p of c.pipes) p.stop();
      if (!c.client.destroyed) c.client.resetAndDestroy();
      if (c.upstream && !c.upstream.destroyed) c.upstream.resetAndDestroy();
    }
    this.conns.clear();
    this.waiting.clear();
  }

  setState(next: LinkState): void {
    const prev = this.state;
    if (prev === next) return;
    this.state = next;
    if (next === 'cut') {
      this.resetAll();
    } else if (next === 'partition') {
      for (const c of this.conns) for (const p of c.pipes) p.hold();
    } else if (prev === 'partition') {
      for (const c of this.conns) for (const p of c.pipes) p.release();
      for (const c of this.waiting) if (!c.client.destroyed) this.connect(c);
      this.waiting.clear();
    }
  }

  stats(): LinkStats {
    return {
      from: this.o.from,
      to: this.o.to,
      listen: this.address,
      target: this.o.target,
      state: this.state,
      activeConnections: this.conns.size,
      acceptedConnections: this.counts.accepted,
      resetConnections: this.counts.reset,
      bytesForward: this.counts.bytesForward,
      bytesReverse: this.counts.bytesReverse,
    };
  }

  async close(): Promise<void> {
    for (const c of this.conns) {
      for (const p of c.pipes) p.stop();
      c.client.destroy();
      c.upstream?.destroy();
    }
    this.conns.clear();
    this.waiting.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
