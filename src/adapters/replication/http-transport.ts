/**
 * The replication transport over HTTP (the core's port, src/core/replication/transport.ts): a
 * stream is a GET answered with NDJSON, an acknowledgement a POST. It frames and moves bytes; when
 * to connect, reconnect, give up on a silent stream or acknowledge is the core driver's decision.
 * The serving side (the routes) is src/servers/region/internal.ts, through `ndjsonSink`.
 */
import type { ServerResponse } from 'node:http';
import { type Dispatcher, Pool, request } from 'undici';
import type { AckBody, StreamMessage, StreamRequest } from '../../core/replication/protocol.js';
import type { ReplicationTransport, StreamSession, StreamSink } from '../../core/replication/transport.js';
import type { RegionId } from '../../core/types.js';
import { encodeToken } from '../../core/version.js';
import {
  ACK_PATH,
  decodeMessage,
  encodeMessage,
  LineSplitter,
  PEER_HEADER,
  STREAM_PATH,
} from './protocol.js';

export interface HttpTransportOptions {
  /** This region (sent as `Meridian-Peer`). */
  region: RegionId;
  /** Base URL of each peer's node as this region reaches it (through the WAN emulator in the lab). */
  peers: readonly { id: RegionId; url: string }[];
  clusterSecret: string;
  /** For streams: keep-alive connections shared with nothing else. */
  dispatcher: Dispatcher;
  /** Acks pipelined per peer at most (one keep-alive connection each). */
  maxAcksInFlight?: number;
  /** An ack's request is abandoned (and its connection reset) after this long (default 5 s). */
  ackTimeoutMs?: number;
}

/**
 * @example
 *   const transport = new HttpTransport({ region, peers, clusterSecret, dispatcher: new Agent() });
 *   const driver = new ReplicationDriver({ core, peers: ids, transport, clock, timers, random, settings });
 */
export class HttpTransport implements ReplicationTransport {
  private readonly urls = new Map<RegionId, string>();
  /** One keep-alive connection per peer for acks, pipelined: a new connection costs a handshake. */
  private readonly pools = new Map<RegionId, Pool>();

  constructor(private readonly o: HttpTransportOptions) {
    for (const p of o.peers) {
      const url = p.url.replace(/\/+$/, '');
      this.urls.set(p.id, url);
      this.pools.set(
        p.id,
        new Pool(new URL(url).origin, { connections: 1, pipelining: o.maxAcksInFlight ?? 4 }),
      );
    }
  }

  openStream(
    peer: RegionId,
    req: StreamRequest,
    deliver: (m: StreamMessage) => Promise<void> | void,
  ): StreamSession {
    const ac = new AbortController();
    const relay = req.relay === 'all' ? '' : `&relay=${req.relay.join(',')}`;
    const url = `${this.url(peer)}${STREAM_PATH}?have=${encodeToken(req.have)}${relay}`;
    const run = async (): Promise<void> => {
      const res = await request(url, {
        method: 'GET',
        headers: { authorization: `Bearer ${this.o.clusterSecret}`, [PEER_HEADER]: this.o.region },
        dispatcher: this.o.dispatcher,
        signal: ac.signal,
        // The driver closes a silent stream itself (three heartbeats).
        bodyTimeout: 0,
        headersTimeout: 0,
      });
      try {
        if (res.statusCode !== 200) {
          const text = await res.body.text().catch(() => '');
          throw new Error(`stream from ${peer} answered ${res.statusCode}: ${text.slice(0, 200)}`);
        }
        const lines = new LineSplitter();
        for await (const chunk of res.body) {
          for (const line of lines.push((chunk as Buffer).toString('utf8'))) {
            const pending = deliver(decodeMessage(line));
            if (pending) await pending;
          }
        }
      } finally {
        res.body.destroy();
      }
    };
    const done = run().catch((e: unknown) => {
      throw ac.signal.aborted && ac.signal.reason instanceof Error ? ac.signal.reason : e;
    });
    return { done, close: (reason) => ac.abort(new Error(reason)) };
  }

  async sendAck(peer: RegionId, body: AckBody): Promise<unknown> {
    const pool = this.pools.get(peer);
    if (!pool) throw new Error(`no peer ${peer}`);
    const res = await pool.request({
      path: `${new URL(this.url(peer)).pathname.replace(/\/+$/, '')}${ACK_PATH}`,
      method: 'POST',
      // An ack may be repeated or reordered safely (acks merge by maximum): let them pipeline.
      idempotent: true,
      blocking: false,
      headers: { authorization: `Bearer ${this.o.clusterSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      // The driver gives up at its own timeout; this frees the pipelined connection too.
      headersTimeout: this.o.ackTimeoutMs ?? 5000,
      bodyTimeout: this.o.ackTimeoutMs ?? 5000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`ack refused by ${peer}: ${res.statusCode}`);
    }
    const text = await res.body.text();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
  }

  private url(peer: RegionId): string {
    const url = this.urls.get(peer);
    if (url === undefined) throw new Error(`no peer ${peer}`);
    return url;
  }
}

/**
 * The serving side's sink: writes each message as one NDJSON line on an HTTP response, and waits
 * for `drain` (or the connection's end) when the socket's buffer is full.
 */
export function ndjsonSink(raw: ServerResponse): StreamSink {
  return {
    write: (m) => raw.write(encodeMessage(m)),
    drained: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          raw.off('drain', done);
          raw.off('close', done);
          resolve();
        };
        raw.once('drain', done);
        raw.once('close', done);
      }),
  };
}
