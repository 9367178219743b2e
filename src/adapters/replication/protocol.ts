/**
 * The replication protocol's HTTP framing. The receiving region B opens
 * `GET /internal/v1/stream?have=<token>&relay=<origins>` (header `Meridian-Peer: B`) to each peer A;
 * A answers with the stream's messages (src/core/replication/protocol.ts) as newline-delimited JSON.
 * B acknowledges what it has durably applied with `POST /internal/v1/ack`. Only framing lives here:
 * what the messages mean and when they are sent is the core's replication driver.
 */
import { MeridianError } from '../../core/errors.js';
import { parseStreamMessage, type StreamMessage } from '../../core/replication/protocol.js';

export const STREAM_PATH = '/internal/v1/stream';
export const ACK_PATH = '/internal/v1/ack';
export const STATUS_PATH = '/internal/v1/status';
export const PEER_HEADER = 'meridian-peer';
export const NDJSON = 'application/x-ndjson';

/** One NDJSON line; throws when the message holds a value JSON cannot carry (the feed then sends placeholders). */
export function encodeMessage(m: StreamMessage): string {
  return `${JSON.stringify(m)}\n`;
}

/** Parses one line from a peer. */
export function decodeMessage(line: string): StreamMessage {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    throw new MeridianError('bad_request', 'replication stream line is not JSON');
  }
  return parseStreamMessage(m);
}

/**
 * Splits a byte stream into lines: feed it chunks, it returns the complete lines so far (a line cut
 * across chunks is held until its end arrives).
 */
export class LineSplitter {
  private buffered = '';

  push(chunk: string): string[] {
    this.buffered += chunk;
    const lines: string[] = [];
    let nl = this.buffered.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      nl = this.buffered.indexOf('\n');
      if (line.length > 0) lines.push(line);
    }
    return lines;
  }
}
