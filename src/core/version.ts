/**
 * Version vectors (per origin region, the highest contiguous sequence applied) and the opaque
 * version token that clients carry for read-your-writes.
 */
import { MeridianError } from './errors.js';
import type { RegionId } from './types.js';

export type VersionVector = Readonly<Record<RegionId, number>>;

export const EMPTY_VERSION: VersionVector = Object.freeze({});

const REGION_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TOKEN_FORMAT = 1;
const MAX_TOKEN_CHARS = 4096;

export function isRegionId(s: unknown): s is RegionId {
  return typeof s === 'string' && REGION_ID.test(s);
}

export function seqOf(v: VersionVector, region: RegionId): number {
  return v[region] ?? 0;
}

/** Pointwise maximum: the smallest version that contains both. */
export function mergeVersions(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<RegionId, number> = { ...a };
  for (const [r, s] of Object.entries(b)) if (s > (out[r] ?? 0)) out[r] = s;
  return out;
}

/**
 * True when `a` has applied everything `b` has (a >= b pointwise). Allocation-free: it runs on
 * every commit for every waiting read, and on every read that carries a token.
 */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  for (const r in b) if (Object.hasOwn(b, r) && (a[r] ?? 0) < b[r]!) return false;
  return true;
}

/**
 * `mergeVersions` for hot paths: returns one of the inputs itself when it already covers the other
 * (versions are immutable values, so sharing is safe), else a new pointwise maximum.
 */
export function joinVersions(a: VersionVector, b: VersionVector): VersionVector {
  if (dominates(a, b)) return a;
  if (dominates(b, a)) return b;
  const out: Record<RegionId, number> = { ...a };
  for (const r in b) if (Object.hasOwn(b, r) && b[r]! > (out[r] ?? 0)) out[r] = b[r]!;
  return out;
}

/** Regions for which `have` is behind `want`, with how many changes it is missing. */
export function missing(have: VersionVector, want: VersionVector): Record<RegionId, number> {
  const out: Record<RegionId, number> = {};
  for (const [r, s] of Object.entries(want)) {
    const h = have[r] ?? 0;
    if (h < s) out[r] = s - h;
  }
  return out;
}

export function versionsEqual(a: VersionVector, b: VersionVector): boolean {
  return dominates(a, b) && dominates(b, a);
}

/** Canonical form: zero entries dropped, keys sorted (so equal versions encode identically). */
export function normalizeVersion(v: VersionVector): VersionVector {
  const out: Record<RegionId, number> = {};
  for (const r of Object.keys(v).sort()) if ((v[r] ?? 0) > 0) out[r] = v[r]!;
  return out;
}

/**
 * Whether `v` already is in canonical form (keys in sorted order, every entry positive), so that
 * `normalizeVersion(v)` would build the same keys in the same order: versions the core builds
 * usually are, and tokens are encoded and decoded on every read that carries one.
 */
function isNormal(v: VersionVector): boolean {
  let prev: string | undefined;
  for (const r in v) {
    if (!Object.hasOwn(v, r)) continue;
    if ((prev !== undefined && !(prev < r)) || !(v[r]! > 0)) return false;
    prev = r;
  }
  return true;
}

/** Validates an untrusted version vector (from a token or a peer). */
export function parseVersion(raw: unknown): VersionVector {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new MeridianError('bad_token', 'version must be an object of region -> sequence');
  }
  const out: Record<RegionId, number> = {};
  for (const [r, s] of Object.entries(raw)) {
    if (!isRegionId(r))
      throw new MeridianError('bad_token', `invalid region id in version: ${JSON.stringify(r)}`);
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
      throw new MeridianError('bad_token', `invalid sequence for ${r} in version: ${JSON.stringify(s)}`);
    }
    out[r] = s;
  }
  return isNormal(out) ? out : normalizeVersion(out);
}

/**
 * Tokens lately encoded or decoded, with their (frozen) version. An edge reads a session's version
 * cookie on every request and merges it into the answer's cookie on every write, so the same few
 * tokens are decoded again and again (base64, JSON and validation: a tenth of the simulator's CPU
 * before this cache). Bounded: emptied when full, so a flood of distinct tokens costs no memory.
 */
const TOKEN_CACHE_MAX = 1024;
const tokenCache = new Map<string, VersionVector>();

function rememberToken(token: string, v: VersionVector): void {
  if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.clear();
  tokenCache.set(token, v);
}

/** Encodes a version as the opaque `Meridian-Version` token: base64url of a versioned JSON body. */
export function encodeToken(v: VersionVector): string {
  const normal = isNormal(v) ? v : normalizeVersion(v);
  const token = Buffer.from(JSON.stringify({ f: TOKEN_FORMAT, v: normal }), 'utf8').toString('base64url');
  // A copy: the caller may still change `v` (its type says readonly, the object may not be).
  if (!tokenCache.has(token)) rememberToken(token, Object.freeze({ ...normal }));
  return token;
}

/** Decodes a token; anything malformed is a `bad_token` error, never a crash. */
export function decodeToken(token: string): VersionVector {
  const known = tokenCache.get(token);
  if (known !== undefined) return known;
  const v = decodeUncached(token);
  rememberToken(token, Object.freeze(v));
  return v;
}

function decodeUncached(token: string): VersionVector {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
    throw new MeridianError('bad_token', 'version token is empty or too long');
  }
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new MeridianError('bad_token', 'version token is not base64url');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new MeridianError('bad_token', 'version token does not decode to JSON');
  }
  if (typeof body !== 'object' || body === null || (body as { f?: unknown }).f !== TOKEN_FORMAT) {
    throw new MeridianError('bad_token', `version token format is not ${TOKEN_FORMAT}`);
  }
  return parseVersion((body as { v?: unknown }).v);
}
