/**
 * The region-to-region replication protocol, as messages: what a stream carries and what an
 * acknowledgement says. How they travel (NDJSON over HTTP in the node, messages over the faulty
 * network in the simulator) is the transport's business (transport.ts); these are the same in both.
 *
 * The receiving region B opens a stream to each peer A, saying what it has applied (`have`) and
 * which other origins A should relay; A answers with a hello, catch-up from B's cursor (changes, or
 * a snapshot when its log no longer reaches back), then live changes and heartbeats. B acknowledges
 * what it has durably applied; the answer carries A's clock.
 */
import type { Change } from '../change.js';
import { MeridianError } from '../errors.js';
import type { Snapshot } from '../store.js';
import type { RegionId } from '../types.js';
import { isRegionId, parseVersion, type VersionVector } from '../version.js';

/**
 * `wallMs` on hello, changes and heartbeats: the sender's physical clock when it wrote the message,
 * from which the receiver learns a lower bound of the sender's clock offset (src/core/clock-offset.ts).
 */
export type StreamMessage =
  /** First message: who is sending, and what it has applied. */
  | { t: 'hello'; region: RegionId; version: VersionVector; heartbeatMs: number; wallMs?: number }
  /** Changes in the sender's log order; per origin contiguous from the receiver's cursor. */
  | { t: 'changes'; changes: Change[]; wallMs?: number }
  /** The receiver was behind the sender's retained log: merge this instead. */
  | { t: 'snapshot'; snapshot: Snapshot; omitted: string[] }
  /** Sent when idle; carries the sender's applied version so the receiver can measure its lag. */
  | { t: 'hb'; version: VersionVector; atMs: number; wallMs?: number };

/** What a receiver asks for when it opens a stream. */
export interface StreamRequest {
  /** What the receiver has durably applied: catch-up starts here. */
  have: VersionVector;
  /**
   * Origins other than the sender whose changes the receiver wants relayed (its own link to them is
   * down); 'all' relays everything. Each region normally sends only its own changes.
   */
  relay: readonly RegionId[] | 'all';
}

export interface AckBody {
  region: RegionId;
  applied: VersionVector;
}

/**
 * The answer to an acknowledgement: `wallMs` is the receiver's physical clock when it handled it,
 * which with the sender's clock before and after the request bounds the offset between them.
 */
export interface AckAnswer {
  ok: true;
  wallMs: number;
}

/**
 * Checks one message a peer sent (already parsed from its framing). Peers are authenticated, so
 * only the envelope is checked here; the core validates what it applies.
 */
export function parseStreamMessage(m: unknown): StreamMessage {
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
