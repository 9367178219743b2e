/**
 * What the edge needs to know about a request and an answer, decided without I/O: whether a
 * request may be retried, what an answer means for health and replay, and the wire formats of the
 * `Meridian-Route` header and the read-your-writes cookies.
 */

import type { RegionId } from '../types.js';
import { decodeToken, encodeToken, isRegionId, mergeVersions, type VersionVector } from '../version.js';
import type { RouteReason, RoutingPolicyName } from './policy.js';

/** Cookie naming the region of the client's last write and until when (edge clock, ms) reads stick to it. */
export const STICKY_COOKIE = 'meridian_region';
/** Cookie carrying the `Meridian-Version` token of the client's last write. */
export const VERSION_COOKIE = 'meridian_version';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** GET, HEAD, PUT and DELETE may be sent twice with the effect of once; so may anything with a key. */
export function isIdempotent(method: string, hasIdempotencyKey: boolean): boolean {
  return hasIdempotencyKey || IDEMPOTENT.has(method);
}

/** A write: anything that is not a read, and so pins the client's reads afterwards. */
export function isWrite(method: string): boolean {
  return !SAFE.has(method);
}

/** The region named by `Meridian-Replay: region=<r>` (other parameters ignored), if well formed. */
export function parseReplayRegion(header: string | undefined): RegionId | undefined {
  if (!header) return undefined;
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim().toLowerCase() !== 'region') continue;
    const value = part
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    return isRegionId(value) ? value : undefined;
  }
  return undefined;
}

/**
 * What an upstream answer means. 421 and 503 naming a replay region are redirections, not
 * failures. 500, 502 and 503 are failures that eject the region. 504 is not: it is a healthy
 * region saying a sync write is unconfirmed (indefinite), and retrying elsewhere would not help.
 */
export type AnswerClass = { kind: 'ok' } | { kind: 'replay'; region: RegionId } | { kind: 'failure' };

export function classifyAnswer(status: number, replayHeader: string | undefined): AnswerClass {
  if (status === 421 || status === 503) {
    const region = parseReplayRegion(replayHeader);
    if (region !== undefined) return { kind: 'replay', region };
  }
  if (status === 500 || status === 502 || status === 503) return { kind: 'failure' };
  return { kind: 'ok' };
}

/** `Meridian-Route: policy=geo; region=eu-west-1; reason=nearest`. */
export function formatRoute(policy: RoutingPolicyName, region: RegionId, reason: RouteReason): string {
  return `policy=${policy}; region=${region}; reason=${reason}`;
}

export function parseRoute(
  header: string | undefined,
): { policy: string; region: string; reason: string } | undefined {
  if (!header) return undefined;
  const out: Record<string, string> = {};
  for (const part of header.split(';')) {
    const [k, v] = part.split('=');
    if (k && v) out[k.trim()] = v.trim();
  }
  if (!out.policy || !out.region || !out.reason) return undefined;
  return { policy: out.policy, region: out.region, reason: out.reason };
}

/** The value of a `name=value` pair in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let from = 0;
  while (from < header.length) {
    const end = header.indexOf(';', from);
    const part = header.slice(from, end < 0 ? header.length : end);
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    if (end < 0) break;
    from = end + 1;
  }
  return undefined;
}

/** `<region>.<untilMs>`: the edge checks the expiry itself rather than trusting the browser's. */
export function encodeSticky(region: RegionId, untilMs: number): string {
  return `${region}.${Math.floor(untilMs)}`;
}

/** The sticky region if the cookie is well formed, names a known region and has not expired. */
export function decodeSticky(
  value: string | undefined,
  nowMs: number,
  isKnown: (r: RegionId) => boolean,
): RegionId | undefined {
  if (!value) return undefined;
  const dot = value.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const region = value.slice(0, dot);
  const untilMs = Number(value.slice(dot + 1));
  if (!Number.isSafeInteger(untilMs) || untilMs <= nowMs || !isKnown(region)) return undefined;
  return region;
}

/** The Set-Cookie headers after a successful write served by `region`. */
export function rywCookies(
  region: RegionId,
  versionToken: string | undefined,
  nowMs: number,
  stickyMs: number,
): string[] {
  const out = [
    `${STICKY_COOKIE}=${encodeSticky(region, nowMs + stickyMs)}; Max-Age=${Math.ceil(stickyMs / 1000)}; Path=/; HttpOnly; SameSite=Lax`,
  ];
  // The version cookie outlives the sticky window on purpose: it is what keeps reads correct once
  // they go elsewhere, and it costs nothing once every region has caught up.
  if (versionToken) out.push(`${VERSION_COOKIE}=${versionToken}; Path=/; HttpOnly; SameSite=Lax`);
  return out;
}

/** Merges two version tokens (either may be absent); a malformed one is dropped, never fatal. */
export function mergeTokens(a: string | undefined, b: string | undefined): string | undefined {
  const va = safeDecode(a);
  const vb = safeDecode(b);
  if (!va) return vb ? b : undefined;
  if (!vb) return a;
  return encodeToken(mergeVersions(va, vb));
}

function safeDecode(token: string | undefined): VersionVector | undefined {
  if (!token) return undefined;
  try {
    return decodeToken(token);
  } catch {
    return undefined;
  }
}

/** The token if it decodes, else undefined (a stale or forged cookie must not break reads). */
export function validToken(token: string | undefined): string | undefined {
  return safeDecode(token) ? token : undefined;
}
