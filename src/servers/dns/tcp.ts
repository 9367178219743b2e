/**
 * GeoDNS over TCP (RFC 7766): length-prefixed messages, pipelined, with the connection management
 * of §6.2.3/§6.2.4. A connection may stay idle between messages for a while, but each message (its
 * 2-byte length and its body) must arrive within a deadline counted from its first byte, so a client
 * dripping one byte at a time cannot hold a connection forever. Connections are capped in total and
 * per client address; at the cap the least recently used idle connection is closed to make room
 * (else the least recently used one), so a flood of idle connections never locks out a new client.
 */
import type { Socket } from 'node:net';

export interface TcpLimits {
  /** A connection with no message in progress is closed after this long. */
  idleMs: number;
  /** A message's length prefix and body must all arrive within this long of its first byte. */
  messageMs: number;
  /** Open connections, all clients together. */
  maxConnections: number;
  /** Open connections from one client address. */
  maxPerClient: number;
  /** Answers written but not yet read by the client; a client that stops reading is cut off. */
  maxUnsentBytes: number;
}

export const TCP_LIMITS: TcpLimits = {
  idleMs: 10_000,
  messageMs: 3_000,
  maxConnections: 512,
  maxPerClient: 32,
  maxUnsentBytes: 256 * 1024,
};

export interface TcpCounters {
  /** Connections closed to make room for a new one at a cap. */
  evicted: number;
  idleClosed: number;
  /** Closed because a message did not arrive whole within its deadline. */
  slowClosed: number;
  /** Closed because the client did not read its answers. */
  unreadClosed: number;
}

interface Conn {
  sock: Socket;
  client: string;
  /** A message has started arriving and is not complete. */
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Answers one framed message body; undefined sends nothing (a dropped query). */
export type TcpAnswer = (msg: Buffer, client: string) => Buffer | undefined;

/**
 * Tracks every TCP connection of one server and serves each.
 * @example
 * const tcp = new TcpConnections(TCP_LIMITS, (msg, ip) => answerBytes(msg, ip));
 * server.on('connection', (sock) => tcp.accept(sock));
 */
export class TcpConnections {
  readonly counters: TcpCounters = { evicted: 0, idleClosed: 0, slowClosed: 0, unreadClosed: 0 };
  /** In least-recently-used order: a connection moves to the end when a message completes. */
  private readonly all = new Map<Socket, Conn>();
  private readonly byClient = new Map<string, Map<Socket, Conn>>();

  constructor(
    private readonly limits: TcpLimits,
    private readonly answer: TcpAnswer,
  ) {}

  get size(): number {
    return this.all.size;
  }

  accept(sock: Socket): void {
    const client = sock.remoteAddress ?? '';
    sock.on('error', () => sock.destroy());
    if (sock.destroyed) return;
    const mine = this.byClient.get(client);
    if (mine && mine.size >= this.limits.maxPerClient) this.evictFrom(mine);
    if (this.all.size >= this.limits.maxConnections) this.evictFrom(this.all);
    const conn: Conn = { sock, client, busy: false, timer: undefined };
    this.all.set(sock, conn);
    const set = mine ?? new Map<Socket, Conn>();
    set.set(sock, conn);
    if (!mine) this.byClient.set(client, set);
    sock.on('close', () => this.forget(conn));
    this.arm(conn, this.limits.idleMs, 'idle');

    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const replies: Buffer[] = [];
      let completed = false;
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        completed = true;
        const out = this.answer(msg, client);
        if (out === undefined) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(out.length, 0);
        replies.push(prefix, out);
      }
      if (sock.destroyed) return;
      // Pipelined queries in one segment get their answers in one write.
      if (replies.length > 0) sock.write(Buffer.concat(replies));
      if (sock.writableLength > this.limits.maxUnsentBytes) {
        this.counters.unreadClosed++;
        sock.destroy();
        return;
      }
      if (completed) this.touch(conn);
      if (pending.length === 0) {
        if (conn.busy || completed) this.arm(conn, this.limits.idleMs, 'idle');
        conn.busy = false;
      } else if (!conn.busy || completed) {
        // A new message began in this chunk: its deadline runs from now and no later byte extends it.
        conn.busy = true;
        this.arm(conn, this.limits.messageMs, 'slow');
      }
    });
  }

  /** Closes every connection (the server is stopping). */
  closeAll(): void {
    for (const c of [...this.all.values()]) c.sock.destroy();
  }

  private arm(conn: Conn, ms: number, why: 'idle' | 'slow'): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = setTimeout(() => {
      if (why === 'idle') this.counters.idleClosed++;
      else this.counters.slowClosed++;
      conn.sock.destroy();
    }, ms);
    conn.timer.unref();
  }

  private touch(conn: Conn): void {
    this.all.delete(conn.sock);
    this.all.set(conn.sock, conn);
    const mine = this.byClient.get(conn.client);
    if (mine) {
      mine.delete(conn.sock);
      mine.set(conn.sock, conn);
    }
  }

  /** Closes the least recently used idle connection of `among`, else its least recently used one. */
  private evictFrom(among: Map<Socket, Conn>): void {
    let victim: Conn | undefined;
    for (const c of among.values()) {
      if (!c.busy) {
        victim = c;
        break;
      }
      victim ??= c;
    }
    if (!victim) return;
    this.counters.evicted++;
    // Forget it now: 'close' comes on a later tick, and the caller counts on the room being made.
    this.forget(victim);
    victim.sock.destroy();
  }

  private forget(conn: Conn): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = undefined;
    this.all.delete(conn.sock);
    const mine = this.byClient.get(conn.client);
    if (mine) {
      mine.delete(conn.sock);
      if (mine.size === 0) this.byClient.delete(conn.client);
    }
  }
}
