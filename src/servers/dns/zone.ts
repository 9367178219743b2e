/**
 * The zone the GeoDNS server is authoritative for, resolved once from config: the apex, its SOA and
 * NS, the service names, and per region the addresses answered for it and the URL that says whether
 * it is healthy. Everything a query needs is decided here, not on each query.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { SoaData } from 'dns-packet';
import type { MeridianConfig } from '../../adapters/config.js';
import { MeridianError } from '../../core/errors.js';
import type { RegionInfo } from '../../core/types.js';

export interface RegionTarget extends RegionInfo {
  /** IPv4 addresses answered in A records for this region. */
  v4: string[];
  /** IPv6 addresses answered in AAAA records for this region. */
  v6: string[];
  /** GET this to learn the region's health (its edge's /healthz); undefined: always healthy. */
  healthUrl: string | undefined;
}

export interface ZonePlan {
  /** Lowercase, no trailing dot: `meridian.test`. */
  apex: string;
  /** Fully qualified lowercase service names: `app.meridian.test`. */
  serviceNames: Set<string>;
  /** Names that exist only because a name below them does (RFC 8020: they are NODATA, not NXDOMAIN). */
  emptyNonTerminals: Set<string>;
  /** The name server's own name (`ns1.<apex>`) and its glue addresses. */
  nsName: string;
  nsV4: string[];
  nsV6: string[];
  soa: SoaData;
  ttlS: number;
  /** TTL used when no region is healthy and the server answers the nearest anyway. */
  failOpenTtlS: number;
  multivalue: number;
  regions: RegionTarget[];
}

/** Answers when every region is down: short, so clients come back to a healthy one quickly. */
export const FAIL_OPEN_TTL_S = 5;

export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function hostOf(url: string): string {
  const h = new URL(url).hostname;
  return h.startsWith('[') ? h.slice(1, -1) : h;
}

/**
 * Builds the zone from config. `serialS` is the SOA serial (seconds since the epoch at start: the
 * zone is generated, so any increasing number will do). `listenHost` (default cfg.dns.listen.host)
 * is the name server's glue address when it is a specific one.
 * @example const plan = zonePlan(cfg, Math.floor(Date.now() / 1000));
 */
export function zonePlan(cfg: MeridianConfig, serialS: number, listenHost = cfg.dns.listen.host): ZonePlan {
  const apex = normalizeName(cfg.dns.zone);
  const fq = (n: string) => (n === '@' || n === '' ? apex : `${normalizeName(n)}.${apex}`);
  const serviceNames = new Set(cfg.dns.names.map(fq));
  const nsName = `ns1.${apex}`;
  const emptyNonTerminals = new Set<string>();
  for (const name of [...serviceNames, nsName]) {
    let n = name;
    while (n.length > apex.length) {
      n = n.slice(n.indexOf('.') + 1);
      if (n !== apex && !serviceNames.has(n)) emptyNonTerminals.add(n);
    }
  }
  const regions: RegionTarget[] = [];
  for (const r of cfg.regions) {
    const configured = cfg.dns.addresses[r.id];
    const addrs = configured ?? (r.edge ? [hostOf(r.edge.url)] : []);
    for (const a of addrs) {
      if (!isIPv4(a) && !isIPv6(a)) {
        throw new MeridianError(
          'bad_request',
          `dns: region ${r.id} would answer '${a}', which is not an IP address; set dns.addresses.${r.id}`,
        );
      }
    }
    if (addrs.length === 0) continue;
    regions.push({
      id: r.id,
      lat: r.lat,
      lon: r.lon,
      v4: addrs.filter((a) => isIPv4(a)),
      v6: addrs.filter((a) => isIPv6(a)),
      healthUrl: r.edge ? new URL('/healthz', r.edge.url).href : undefined,
    });
  }
  const host = listenHost;
  const ttlS = cfg.dns.ttl;
  return {
    apex,
    serviceNames,
    emptyNonTerminals,
    nsName,
    nsV4: isIPv4(host) && host !== '0.0.0.0' ? [host] : [],
    nsV6: isIPv6(host) && host !== '::' ? [host] : [],
    soa: {
      mname: nsName,
      rname: `hostmaster.${apex}`,
      serial: serialS >>> 0,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      // RFC 2308: negative answers are cached for min(SOA TTL, minimum).
      minimum: ttlS,
    },
    ttlS,
    failOpenTtlS: Math.min(ttlS, FAIL_OPEN_TTL_S),
    multivalue: cfg.dns.multivalue,
    regions,
  };
}
