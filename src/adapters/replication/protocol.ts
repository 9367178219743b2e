/**
 * The region-to-region replication protocol over HTTP. The receiving region B opens
 * `GET /internal/v1/stream?have=<token>` (header `Meridian-Peer: B`) to each peer A; A answers with
 * newline-delimited JSON messages: a hello, catch-up from B's cursor (changes, or a snapshot when
 * its log no longer reaches back), then live changes and heartbeats. B acknowledges what it has
 * durably applied with `POST /internal/v1/ack`.
 */
import type { Change } from '../../core/change.js';
import { MeridianError } from '../../core/errors.js';
import type { Snapshot } from '../../core/store.js';
import type { RegionId } from '../../core/types.js';
import { isRegionId, parseVersion, type VersionVector } from '../../core/version.js';

export const STREAM_PATH = '/internal/v1/stream';
export const ACK_PATH = '/internal/v1/ack';
export const STATUS_PATH = '/internal/v1/status';
export const PEER_HEADER = 'meridian-peer';
export const NDJSON = 'application/x-ndjson';

/**
 * `wallMs` on hello, changes and heartbeats: the sender's physical clock when it wrote the message,
 * from which the receiver learns a lower bound of the sender's clock offset (src/core/clock-offset.ts).
 */
export type StreamMessage =
  /** First line: who is sending, and what it has applied. */
  | { t: 'hello'; region: RegionId; version: VersionVector; heartbeatMs: number; wallMs?: number }
  /** Changes in the sender's log order; per origin contiguous from the receiver's cursor. */
  | { t: 'changes'; changes: Change[]; wallMs?: number }
  /** The receiver was behind the sender's retained log: merge this instead. */
  | { t: 'snapshot'; snapshot: Snapshot; omitted: string[] }
  /** Sent when idle; carries the sender's applied version so the receiver can measure its lag. */
  | { t: 'hb'; version: VersionVector; atMs: number; wallMs?: number };

export interface AckBody {
  region: RegionId;
  applied: VersionVector;
}

export function encodeMessage(m: StreamMessage): string {
  return `${JSON.stringify(m)}\n`;
}

/**
 * Parses one line from a peer. Peers are authenticated with the cluster secret, so only the
 * envelope is checked here; the core validates what it applies.
 */
export function decodeMessage(line: string): StreamMessage {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    throw new MeridianError('bad_request', 'replication stream line is not JSON');
  }
  const t = (m as { t?: unknown } | null)?.t;
  if (t === 'changes' && Array.isArray((m as { changes?: unknown }).changes)) return m as StreamMessage;
  if (t === 'hb' || t === 'hello') {
    const v = m as { version?: unknown };
    return { ...(m as StreamMessage & object), version: parseVersion(v.version) } as StreamMessage;
  }
  if (t === 'snapshot' && typeof (m as { snapshot?: unknown }).snapshot === 'object')
    return m as StreamMessage;
  throw new MeridianError('bad_request', `unknown replication message type ${JSON.stringify(t)}`);
}

/** The sender's clock reading a message carries, if it is a plausible one (ms since the epoch). */
export function senderWallMs(m: StreamMessage): number | undefined {
  return plausibleWallMs((m as { wallMs?: unknown }).wallMs);
}

/**
 * The answer to an acknowledgement: `wallMs` is the receiver's physical clock when it handled it,
 * which with the sender's clock before and after the request bounds the offset between them.
 */
export interface AckAnswer {
  ok: true;
  wallMs: number;
}

/** The clock reading of an acknowledgement's answer, if it carries a plausible one. */
export function answerWallMs(raw: unknown): number | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  return plausibleWallMs((raw as { wallMs?: unknown }).wallMs);
}

function plausibleWallMs(w: unknown): number | undefined {
  return typeof w === 'number' && Number.isFinite(w) && w > 0 && w < 2 ** 48 ? w : undefined;
}

export function parseAck(raw: unknown): AckBody {
  const b = raw as { region?: unknown; applied?: unknown } | null;
  if (typeof b !== 'object' || b === null || !isRegionId(b.region)) {
    throw new MeridianError('bad_request', 'ack body must be {"region": <region id>, "applied": {...}}');
  }
  return { region: b.region, applied: parseVersion(b.applied) };
}
