/**
 * Where a client is: CIDR overrides from config first (IPv4 and IPv6, longest prefix wins), then an
 * mmdb GeoIP database (a city database's coordinates, or a country database's code mapped to a
 * representative point from data/country-centroids.json). Shared by the edge and the GeoDNS server.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import maxmind, { type Reader, type Response } from 'maxmind';
import { MeridianError } from '../core/errors.js';
import type { MeridianConfig } from './config.js';
import { projectRoot } from './region-table.js';

export interface GeoLocation {
  lat: number;
  lon: number;
  source: 'header' | 'override' | 'mmdb';
}

export interface GeoIp {
  /** The location of an IPv4 or IPv6 address (IPv4-mapped IPv6 counts as IPv4), or undefined. */
  locate(ip: string): GeoLocation | undefined;
}

/** A located network: where it is, and how many leading bits of the address the answer holds for. */
export interface GeoNetwork {
  location: GeoLocation;
  /** Length of the matching override or mmdb network (the RFC 7871 scope a DNS answer may claim). */
  prefixLength: number;
}

/** A GeoIp that also says how wide the matching network is (the GeoDNS server needs it for ECS). */
export interface NetworkGeoIp extends GeoIp {
  locateNetwork(ip: string): GeoNetwork | undefined;
}

/** The bundled CC0 database (country level, IPv4 and IPv6), from @ip-location-db/geo-whois-asn-country-mmdb. */
export function defaultMmdbPath(): string {
  return join(
    projectRoot(),
    'node_modules',
    '@ip-location-db',
    'geo-whois-asn-country-mmdb',
    'geo-whois-asn-country.mmdb',
  );
}

// ---------------------------------------------------------------- addresses and CIDRs

/** An address as a family and a 32- or 128-bit integer. */
interface ParsedIp {
  v6: boolean;
  bits: bigint;
}

function parseV4(ip: string): bigint | undefined {
  if (!isIPv4(ip)) return undefined;
  let n = 0n;
  for (const part of ip.split('.')) n = (n << 8n) | BigInt(Number(part));
  return n;
}

function parseV6(ip: string): bigint | undefined {
  const zone = ip.indexOf('%');
  const addr = zone >= 0 ? ip.slice(0, zone) : ip;
  if (!isIPv6(addr)) return undefined;
  // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  let head = addr;
  let tail: bigint[] = [];
  const lastColon = addr.lastIndexOf(':');
  const maybeV4 = addr.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    const v4 = parseV4(maybeV4);
    if (v4 === undefined) return undefined;
    tail = [v4 >> 16n, v4 & 0xffffn];
    head = addr.slice(0, lastColon);
    if (head.endsWith(':')) head += ':';
  }
  const [left = '', right] = head.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => BigInt(Number.parseInt(g, 16))));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const fill = 8 - l.length - r.length - tail.length;
  if (right === undefined && fill !== 0) return undefined;
  const all = [...l, ...Array<bigint>(Math.max(0, fill)).fill(0n), ...r, ...tail];
  if (all.length !== 8) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses an address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes plain IPv4. */
export function parseIp(ip: string): ParsedIp | undefined {
  const v4 = parseV4(ip);
  if (v4 !== undefined) return { v6: false, bits: v4 };
  const v6 = parseV6(ip);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { v6: false, bits: v6 & 0xffffffffn };
  return { v6: true, bits: v6 };
}

/** The textual form of a parsed address, IPv4-mapped addresses unwrapped (what mmdb readers want). */
export function normalizeIp(ip: string): string | undefined {
  const p = parseIp(ip);
  if (!p) return undefined;
  if (!p.v6) {
    const b = p.bits;
    return [24n, 16n, 8n, 0n].map((s) => String((b >> s) & 0xffn)).join('.');
  }
  return ip.split('%')[0];
}

export interface Cidr {
  v6: boolean;
  prefix: number;
  /** The network bits, host bits cleared. */
  network: bigint;
}

/** Parses `a.b.c.d/n` or `x::/n` (a bare address is a /32 or /128); throws bad_request when invalid. */
export function parseCidr(cidr: string): Cidr {
  const [addr = '', len] = cidr.trim().split('/');
  const p = parseIp(addr);
  const mappedV6 = p !== undefined && !p.v6 && !isIPv4(addr);
  if (!p)
    throw new MeridianError(
      'bad_request',
      `'${cidr}' is not a CIDR block such as 10.0.0.0/8 or 2001:db8::/32`,
    );
  const width = p.v6 ? 128 : 32;
  let prefix = len === undefined ? (mappedV6 ? 128 : width) : Number(len);
  // ::ffff:10.0.0.0/104 means 10.0.0.0/8.
  if (mappedV6) prefix -= 96;
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > width ||
    (len !== undefined && !/^\d+$/.test(len))
  ) {
    throw new MeridianError('bad_request', `'${cidr}': prefix length must be 0..${width}`);
  }
  return { v6: p.v6, prefix, network: maskBits(p.bits, prefix, width) };
}

function maskBits(bits: bigint, prefix: number, width: number): bigint {
  if (prefix === 0) return 0n;
  const host = BigInt(width - prefix);
  return (bits >> host) << host;
}

/** Whether an address lies in a block. */
export function cidrContains(block: Cidr, ip: ParsedIp): boolean {
  if (block.v6 !== ip.v6) return false;
  return maskBits(ip.bits, block.prefix, block.v6 ? 128 : 32) === block.network;
}

// ---------------------------------------------------------------- the Meridian-Client-Location header

/**
 * Parses `Meridian-Client-Location: <lat>,<lon>` (decimal degrees); undefined when absent or invalid,
 * so a bad header falls back to the IP instead of failing the request.
 * @example parseClientLocation('48.85,2.35') // { lat: 48.85, lon: 2.35, source: 'header' }
 */
export function parseClientLocation(header: string | string[] | undefined): GeoLocation | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const m = /^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$/.exec(value);
  if (!m) return undefined;
  const lat = Number(m[1]);
  const lon = Number(m[2]);
  if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) return undefined;
  return { lat, lon, source: 'header' };
}

// ---------------------------------------------------------------- the lookup

type Centroids = Record<string, { lat: number; lon: number }>;

let centroidsCache: Centroids | undefined;

/** data/country-centroids.json: ISO 3166 code -> a representative point. */
export function countryCentroids(): Centroids {
  if (!centroidsCache) {
    const raw = JSON.parse(readFileSync(join(projectRoot(), 'data', 'country-centroids.json'), 'utf8')) as {
      countries: Centroids;
    };
    centroidsCache = raw.countries;
  }
  return centroidsCache;
}

/** The record shapes we read: GeoLite2/GeoIP2 City and Country, and ip-location-db's country databases. */
interface MmdbRecord {
  location?: { latitude?: number; longitude?: number };
  country?: { iso_code?: string };
  registered_country?: { iso_code?: string };
  country_code?: string;
}

function fromRecord(rec: MmdbRecord, centroids: Centroids): GeoLocation | undefined {
  const { latitude, longitude } = rec.location ?? {};
  if (typeof latitude === 'number' && typeof longitude === 'number') {
    return { lat: latitude, lon: longitude, source: 'mmdb' };
  }
  const cc = rec.country_code ?? rec.country?.iso_code ?? rec.registered_country?.iso_code;
  const c = cc === undefined ? undefined : centroids[cc.toUpperCase()];
  return c ? { lat: c.lat, lon: c.lon, source: 'mmdb' } : undefined;
}

interface Override {
  block: Cidr;
  lat: number;
  lon: number;
}

/**
 * Builds a GeoIp from overrides and an optional mmdb reader (exposed for tests and for callers that
 * already hold a reader).
 */
export function makeGeoIp(
  overrides: MeridianConfig['geoip']['overrides'],
  reader: Pick<Reader<Response>, 'getWithPrefixLength'> | undefined,
  centroids: Centroids = countryCentroids(),
): NetworkGeoIp {
  // Longest prefix first, so the most specific override wins whatever the config order.
  const table: Override[] = overrides
    .map((o) => ({ block: parseCidr(o.cidr), lat: o.lat, lon: o.lon }))
    .sort((a, b) => b.block.prefix - a.block.prefix);
  const lookup = (ip: string): GeoNetwork | undefined => {
    const parsed = parseIp(ip);
    if (!parsed) return undefined;
    for (const o of table) {
      if (cidrContains(o.block, parsed)) {
        return { location: { lat: o.lat, lon: o.lon, source: 'override' }, prefixLength: o.block.prefix };
      }
    }
    if (!reader) return undefined;
    const key = normalizeIp(ip);
    if (key === undefined) return undefined;
    try {
      const [rec, prefixLength] = reader.getWithPrefixLength(key) as [MmdbRecord | null, number];
      const location = rec ? fromRecord(rec, centroids) : undefined;
      return location ? { location, prefixLength } : undefined;
    } catch {
      return undefined;
    }
  };
  // Keyed by the address as given, before any parsing: the same few resolvers and client subnets
  // come back again and again, and the parse (BigInt for IPv6) costs more than the lookup.
  const cache = new Map<string, GeoNetwork | undefined>();
  const locateNetwork = (ip: string): GeoNetwork | undefined => {
    const hit = cache.get(ip);
    if (hit !== undefined || cache.has(ip)) return hit;
    const found = lookup(ip);
    // Bounded: dropping everything when full is cheaper than an LRU and good enough here.
    if (cache.size >= 10_000) cache.clear();
    cache.set(ip, found);
    return found;
  };
  return { locateNetwork, locate: (ip) => locateNetwork(ip)?.location };
}

/**
 * Opens the configured mmdb (or the bundled CC0 country database) and applies CIDR overrides first.
 * Throws bad_request for an invalid override and unavailable when the database cannot be read.
 * @example
 * const geo = await openGeoIp(cfg.geoip);
 * geo.locate('8.8.8.8'); // { lat: 41.85, lon: -87.65, source: 'mmdb' } (US)
 */
export async function openGeoIp(cfg: MeridianConfig['geoip']): Promise<NetworkGeoIp> {
  const path = cfg.mmdb ?? defaultMmdbPath();
  let reader: Reader<Response>;
  try {
    reader = await maxmind.open<Response>(path, { cache: { max: 10_000 } });
  } catch (e) {
    throw new MeridianError('unavailable', `cannot open GeoIP database ${path}: ${(e as Error).message}`);
  }
  return makeGeoIp(cfg.overrides, reader);
}
