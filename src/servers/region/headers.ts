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

type HeaderValue = string | string[] | undefined;

function single(name: string, v: HeaderValue): string | undefined {
  if (Array.isArray(v)) {
    if (v.length > 1) throw new MeridianError('bad_request', `send the ${name} header once`);
    return v[0];
  }
  return v;
}

/** Every origin a token names must be a region of the cluster: no region could ever serve another. */
function checkOrigins(name: string, v: VersionVector, regions: readonly { id: string }[]): void {
  for (const origin of Object.keys(v)) {
    if (!regions.some((r) => r.id === origin)) {
      throw new MeridianError(
        'bad_token',
        `${name} names '${origin}', which is not a region of this cluster`,
      );
    }
  }
}

/**
 * Decodes the version tokens a request carries: `sent` merges both, `min` is what a read waits for.
 * Every origin they name must be one of `regions`.
 */
export function parseVersionHeaders(
  headers: Record<string, HeaderValue>,
  regions: readonly { id: string }[],
): {
  sent: VersionVector | undefined;
  min: VersionVector | undefined;
} {
  const v = single(H.version, headers[H.version]);
  const m = single(H.minVersion, headers[H.minVersion]);
  if (v === undefined && m === undefined) return { sent: undefined, min: undefined };
  const version = v === undefined ? undefined : decodeToken(v.trim());
  const min = m === undefined ? undefined : decodeToken(m.trim());
  if (version) checkOrigins(H.version, version, regions);
  if (min) checkOrigins(H.minVersion, min, regions);
  return { sent: mergeVersions(version ?? {}, min ?? {}), min };
}

/**
 * How long a request may wait for Meridian-Min-Version: the node's `maxWaitMs` unless the client
 * asks for less. A larger ask is clamped, not refused, so a client (or an edge) with a longer budget
 * of its own still gets this node's answer, a 503 naming a region to replay at, in time.
 */
export function waitBudgetMs(raw: HeaderValue, maxWaitMs: number): number {
  const v = single(H.maxWaitMs, raw)?.trim();
  if (v === undefined) return maxWaitMs;
  if (!/^\d{1,15}$/.test(v)) {
    throw new MeridianError('bad_request', `${H.maxWaitMs} must be a whole number of milliseconds`);
  }
  return Math.min(Number(v), maxWaitMs);
}

export function replayHeader(region: string): string {
  return `region=${region}`;
}
