/**
 * Measures replication lag per directed link the way a client would feel it: write a probe
 * document at the origin's node, then ask each peer's node to read it with the write's version as
 * Meridian-Min-Version. The peer answers once it has applied the write, so the read's completion
 * time minus the write's acknowledgement time is the lag (plus ~1 ms of loopback).
 */
import { request } from 'undici';
import type { LabRegion } from './plan.js';

export interface LagResult {
  from: string;
  to: string;
  atMs: number;
  /** undefined: the peer did not catch up within the wait. */
  lagMs: number | undefined;
}

export const LAG_COLLECTION = 'settings';

/** One probe round from `origin` to every peer. */
export async function probeLag(
  origin: LabRegion,
  peers: readonly LabRegion[],
  maxWaitMs = 5000,
): Promise<LagResult[]> {
  const key = `lab-lag-${origin.id}`;
  let token: string | undefined;
  let ackAtMs: number;
  try {
    const res = await request(`${origin.nodeUrl}/v1/${LAG_COLLECTION}/${key}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sentAtMs: Date.now() }),
      headersTimeout: 3000,
      bodyTimeout: 3000,
    });
    await res.body.text();
    ackAtMs = Date.now();
    const t = res.headers['meridian-version'];
    if (res.statusCode !== 200 || typeof t !== 'string') return [];
    token = t;
  } catch {
    return [];
  }
  return Promise.all(
    peers.map(async (p): Promise<LagResult> => {
      try {
        const res = await request(`${p.nodeUrl}/v1/${LAG_COLLECTION}/${key}`, {
          headers: { 'meridian-min-version': token as string, 'meridian-max-wait-ms': String(maxWaitMs) },
          headersTimeout: maxWaitMs + 2000,
          bodyTimeout: maxWaitMs + 2000,
        });
        await res.body.text();
        const at = Date.now();
        return {
          from: origin.id,
          to: p.id,
          atMs: at,
          lagMs: res.statusCode === 200 ? at - ackAtMs : undefined,
        };
      } catch {
        return { from: origin.id, to: p.id, atMs: Date.now(), lagMs: undefined };
      }
    }),
  );
}
