/**
 * The transport port: the only thing the replication driver needs from the world besides the core,
 * a clock, timers and random numbers. The node implements it over HTTP (NDJSON streams, POSTed
 * acks: src/adapters/replication/http-transport.ts), the simulator over its faulty network
 * (src/sim/replication-transport.ts). A transport frames and moves messages; it decides nothing.
 */
import type { RegionId } from '../types.js';
import type { AckAnswer, AckBody, StreamMessage, StreamRequest } from './protocol.js';

/** One inbound stream, opened by `ReplicationTransport.openStream`. */
export interface StreamSession {
  /**
   * Settles once when the stream ends: resolves when the peer ended it cleanly, rejects when it
   * failed (refused, reset, unreachable) or was closed from this side.
   */
  readonly done: Promise<void>;
  /** Ends the stream from this side; `done` then settles (rejected with `reason`). */
  close(reason: string): void;
}

/**
 * Where a feed writes the messages of one outbound stream (the serving side).
 * `write` may throw when a message cannot be framed (a value JSON cannot carry): the feed then
 * replaces what it cannot send with placeholders and writes again.
 */
export interface StreamSink {
  /** Returns false when the consumer is slow; the feed then waits for `drained()`. */
  write(m: StreamMessage): boolean;
  drained(): Promise<void>;
}

export interface ReplicationTransport {
  /**
   * Opens a stream from `peer` and hands each message to `deliver`, in the order the peer sent
   * them; a promise `deliver` returns holds further messages until it settles (backpressure).
   */
  openStream(
    peer: RegionId,
    request: StreamRequest,
    deliver: (m: StreamMessage) => Promise<void> | void,
  ): StreamSession;
  /**
   * Sends an acknowledgement to `peer`; resolves with its answer (parsed, unchecked: a peer of an
   * older version may answer without a clock), rejects when it failed. No timeout of its own: the
   * driver gives up on an answer after `ackTimeoutMs`.
   */
  sendAck(peer: RegionId, body: AckBody): Promise<AckAnswer | unknown>;
  /** Releases connections; called when the driver stops. */
  close?(): Promise<void>;
}
