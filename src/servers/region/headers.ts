/** The Meridian headers of the region node: names, and parsing of the ones clients send. */
import { MeridianError } from '../../core/errors.js';
import { decodeToken, mergeVersions, type VersionVector } from '../../core/version.js';

export const H = {
  region: 'meridian-region',
  version: 'meridian-version',
  minVersion: 'meridian-min-version',
  maxWaitMs: 'meridian-max-wait-ms',
  replay: 'meridian-replay',
  homeRegion: 'meridian-home-region',
} as const;

/** Longest a read may be asked to wait for Meridian-Min-Version. */
export const MAX_WAIT_CAP_MS = 60_000;

type HeaderValue = string | string[] | undefined;

function single(name: string, v: HeaderValue): string | undefined {
  if (Array.isArray(v)) {
    if (v.length > 1) throw new MeridianError('bad_request', `send the ${name} header once`);
    return v[0];
  }
  return v;
}

/** Decodes the version tokens a request carries: `sent` merges both, `min` is what a read waits for. */
export function parseVersionHeaders(headers: Record<string, HeaderValue>): {
  sent: VersionVector | undefined;
  min: VersionVector | undefined;
} {
  const v = single(H.version, headers[H.version]);
  const m = single(H.minVersion, headers[H.minVersion]);
  if (v === undefined && m === undefined) return { sent: undefined, min: undefined };
  const version = v === undefined ? undefined : decodeToken(v.trim());
  const min = m === undefined ? undefined : decodeToken(m.trim());
  return { sent: mergeVersions(version ?? {}, min ?? {}), min };
}

export function parseMaxWaitMs(raw: HeaderValue): number | undefined {
  const v = single(H.maxWaitMs, raw);
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n > MAX_WAIT_CAP_MS) {
    throw new MeridianError('bad_request', `${H.maxWaitMs} must be an integer from 0 to ${MAX_WAIT_CAP_MS}`);
  }
  return n;
}

export function replayHeader(region: string): string {
  return `region=${region}`;
}
