/**
 * One DNS query in, one answer out (or nothing, for a packet that must be dropped). No sockets here:
 * the UDP and TCP shells call `answerQuery` with the bytes and the sender's address, so the whole
 * decision can be tested, and fuzzed, without the network.
 */

import type { Answer, DecodedPacket, OptAnswer, Question } from 'dns-packet';
import * as packet from 'dns-packet';
import type { GeoLocation, NetworkGeoIp } from '../../adapters/geoip.js';
import { greatCircleKm } from '../../core/geo.js';
import { type ClientSubnet, ECS_OPTION_CODE, echoClientSubnet, parseClientSubnet } from './ecs.js';
import { normalizeName, type RegionTarget, type ZonePlan } from './zone.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type RcodeName = keyof typeof RCODE | 'BADVERS';

/** Without EDNS a UDP answer may not exceed 512 bytes (RFC 1035). */
export const CLASSIC_UDP_BYTES = 512;
/** Our own EDNS UDP limit: DNS Flag Day 2020's 1232 bytes, which never needs IP fragmentation. */
export const MAX_UDP_BYTES = 1232;

const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;

export interface QueryContext {
  /** The address the query came from (the resolver, or a stub client). */
  sourceIp: string;
  transport: 'udp' | 'tcp';
}

export interface Router {
  plan: ZonePlan;
  geo: NetworkGeoIp;
  isHealthy(regionId: string): boolean;
}

export type Outcome =
  | { kind: 'drop'; reason: string }
  | {
      kind: 'reply';
      bytes: Buffer;
      rcode: RcodeName;
      truncated: boolean;
      /** The regions answered, nearest first (A/AAAA of a service name only). */
      regions: string[];
      /** Where the client was placed and from what. */
      locatedBy: 'ecs' | 'source' | 'none';
      failOpen: boolean;
    };

type Reply = Extract<Outcome, { kind: 'reply' }>;

/** A header-only answer for a query too broken to echo its question. */
function headerOnly(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  const flags = query.readUInt16BE(2);
  // Keep the opcode and RD bits of the query, as RFC 1035 asks.
  out.writeUInt16BE(QR | (flags & 0x7800) | (flags & RD) | rcode, 2);
  return out;
}

interface Placement {
  location: GeoLocation | undefined;
  locatedBy: 'ecs' | 'source' | 'none';
  scopePrefixLength: number;
}

/** Where the client is: its ECS subnet when it sent one and we can place it, else the resolver. */
function place(geo: NetworkGeoIp, sourceIp: string, ecs: ClientSubnet | undefined): Placement {
  if (ecs && ecs.sourcePrefixLength > 0) {
    const net = geo.locateNetwork(ecs.address);
    if (net) {
      const width = ecs.family === 1 ? 32 : 128;
      return {
        location: net.location,
        locatedBy: 'ecs',
        scopePrefixLength: Math.min(net.prefixLength, width),
      };
    }
  }
  // Scope 0: the answer did not depend on the client's subnet, any client may share it.
  const location = geo.locate(sourceIp);
  return { location, locatedBy: location ? 'source' : 'none', scopePrefixLength: 0 };
}

/**
 * The regions to answer for one address family: healthy ones nearest first, or, when none is
 * healthy, all of them (fail open, as Route 53 does) so a broken health view never takes the
 * service off the map. Without a location, config order stands in for distance.
 */
export function chooseRegions(
  plan: ZonePlan,
  family: 4 | 6,
  location: GeoLocation | undefined,
  isHealthy: (id: string) => boolean,
): { regions: RegionTarget[]; failOpen: boolean } {
  const candidates = plan.regions.filter((r) => (family === 4 ? r.v4 : r.v6).length > 0);
  const healthy = candidates.filter((r) => isHealthy(r.id));
  const failOpen = healthy.length === 0 && candidates.length > 0;
  const pool = failOpen ? candidates : healthy;
  if (!location) return { regions: pool, failOpen };
  const ranked = pool
    .map((r, i) => ({ r, i, km: greatCircleKm(location, r) }))
    .sort((a, b) => a.km - b.km || (a.r.id < b.r.id ? -1 : a.r.id > b.r.id ? 1 : a.i - b.i));
  return { regions: ranked.map((x) => x.r), failOpen };
}

interface Built {
  rcode: RcodeName;
  aa: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  regions: string[];
  failOpen: boolean;
}

function soaRecord(plan: ZonePlan): Answer {
  return { type: 'SOA', name: plan.apex, ttl: plan.ttlS, class: 'IN', data: plan.soa };
}

function addressRecords(name: string, type: 'A' | 'AAAA', addrs: string[], ttlS: number): Answer[] {
  return addrs.map((a) => ({ type, name, ttl: ttlS, class: 'IN' as const, data: a }));
}

function serviceAnswer(plan: ZonePlan, q: Question, placement: Placement, router: Router): Built {
  const t: string = q.type;
  const families: Array<4 | 6> = t === 'A' ? [4] : t === 'AAAA' ? [6] : [4, 6];
  const answers: Answer[] = [];
  const regions: string[] = [];
  let failOpen = false;
  for (const family of families) {
    const chosen = chooseRegions(plan, family, placement.location, (id) => router.isHealthy(id));
    failOpen ||= chosen.failOpen;
    const ttl = chosen.failOpen ? plan.failOpenTtlS : plan.ttlS;
    const addrs: string[] = [];
    for (const r of chosen.regions) {
      if (addrs.length >= plan.multivalue) break;
      const list = family === 4 ? r.v4 : r.v6;
      const take = list.slice(0, plan.multivalue - addrs.length);
      addrs.push(...take);
      if (!regions.includes(r.id)) regions.push(r.id);
    }
    answers.push(...addressRecords(q.name, family === 4 ? 'A' : 'AAAA', addrs, ttl));
  }
  if (answers.length === 0) return noData(plan);
  return { rcode: 'NOERROR', aa: true, answers, authorities: [], additionals: [], regions, failOpen };
}

function noData(plan: ZonePlan): Built {
  return {
    rcode: 'NOERROR',
    aa: true,
    answers: [],
    authorities: [soaRecord(plan)],
    additionals: [],
    regions: [],
    failOpen: false,
  };
}

function ok(answers: Answer[], additionals: Answer[] = []): Built {
  return { rcode: 'NOERROR', aa: true, answers, authorities: [], additionals, regions: [], failOpen: false };
}

/** The answer for a question known to be inside the zone. */
function inZone(plan: ZonePlan, q: Question, name: string, placement: Placement, router: Router): Built {
  // dns-packet decodes type 255 as 'ANY', which its typings do not list.
  const t: string = q.type;
  if (plan.serviceNames.has(name) && (t === 'A' || t === 'AAAA' || t === 'ANY')) {
    return serviceAnswer(plan, q, placement, router);
  }
  if (name === plan.apex) {
    const soa = { ...soaRecord(plan), name: q.name };
    const ns: Answer = { type: 'NS', name: q.name, ttl: plan.ttlS, class: 'IN', data: plan.nsName };
    const glue = [
      ...addressRecords(plan.nsName, 'A', plan.nsV4, plan.ttlS),
      ...addressRecords(plan.nsName, 'AAAA', plan.nsV6, plan.ttlS),
    ];
    if (t === 'SOA') return ok([soa]);
    if (t === 'NS') return ok([ns], glue);
    if (t === 'ANY') return ok([soa, ns], glue);
    return noData(plan);
  }
  if (name === plan.nsName) {
    if (t === 'A' && plan.nsV4.length > 0) return ok(addressRecords(q.name, 'A', plan.nsV4, plan.ttlS));
    if (t === 'AAAA' && plan.nsV6.length > 0) return ok(addressRecords(q.name, 'AAAA', plan.nsV6, plan.ttlS));
    return noData(plan);
  }
  if (plan.serviceNames.has(name) || plan.emptyNonTerminals.has(name)) return noData(plan);
  return { ...noData(plan), rcode: 'NXDOMAIN' };
}

function rcodeBits(r: RcodeName): number {
  return r === 'BADVERS' ? 0 : RCODE[r];
}

/**
 * Answers one DNS message. Never throws: a message that cannot be parsed past its header gets
 * FORMERR, one without a whole header (or that is itself a response) is dropped.
 * @example
 * const out = answerQuery(bytes, { sourceIp: '192.0.2.1', transport: 'udp' }, router);
 * if (out.kind === 'reply') socket.send(out.bytes, port, address);
 */
export function answerQuery(msg: Buffer, ctx: QueryContext, router: Router): Outcome {
  if (msg.length < 12) return { kind: 'drop', reason: 'shorter than a DNS header' };
  const flags = msg.readUInt16BE(2);
  // Never answer an answer: two servers could bounce packets between them forever.
  if (flags & QR) return { kind: 'drop', reason: 'QR bit set (a response, not a query)' };
  const reply = (bytes: Buffer, rcode: RcodeName, extra: Partial<Reply> = {}): Reply => ({
    kind: 'reply',
    bytes,
    rcode,
    truncated: false,
    regions: [],
    locatedBy: 'none',
    failOpen: false,
    ...extra,
  });
  if (((flags >> 11) & 0xf) !== 0) return reply(headerOnly(msg, RCODE.NOTIMP), 'NOTIMP');

  let query: DecodedPacket;
  try {
    query = packet.decode(msg);
  } catch {
    return reply(headerOnly(msg, RCODE.FORMERR), 'FORMERR');
  }
  const q = query.questions?.[0];
  const opts = (query.additionals ?? []).filter((a): a is OptAnswer => a.type === 'OPT');
  if (!q || query.questions?.length !== 1 || opts.length > 1 || (query.answers?.length ?? 0) > 0) {
    return reply(headerOnly(msg, RCODE.FORMERR), 'FORMERR');
  }
  const opt = opts[0];
  let ecs: ClientSubnet | undefined;
  if (opt) {
    const raw = opt.options.find((o) => o.code === ECS_OPTION_CODE);
    if (raw?.data) {
      const parsed = parseClientSubnet(raw.data);
      if (!parsed.ok) return reply(headerOnly(msg, RCODE.FORMERR), 'FORMERR');
      ecs = parsed.subnet;
    }
  }

  const plan = router.plan;
  const name = normalizeName(q.name);
  let built: Built;
  let placement: Placement = { location: undefined, locatedBy: 'none', scopePrefixLength: 0 };
  if (opt && opt.ednsVersion > 0) {
    built = { ...ok([]), aa: false, rcode: 'BADVERS' };
  } else if ((q.class ?? 'IN') !== 'IN' && q.class !== 'ANY') {
    built = { ...ok([]), aa: false, rcode: 'REFUSED' };
  } else if (name !== plan.apex && !name.endsWith(`.${plan.apex}`)) {
    built = { ...ok([]), aa: false, rcode: 'REFUSED' };
  } else if ((q.type as string) === 'AXFR' || (q.type as string) === 'IXFR') {
    // The zone is generated per query; there is nothing to transfer to a secondary.
    built = { ...ok([]), aa: false, rcode: 'REFUSED' };
  } else {
    if (plan.serviceNames.has(name)) placement = place(router.geo, ctx.sourceIp, ecs);
    built = inZone(plan, q, name, placement, router);
  }

  const respOpt: OptAnswer | undefined = opt
    ? {
        type: 'OPT',
        name: '.',
        udpPayloadSize: MAX_UDP_BYTES,
        extendedRcode: built.rcode === 'BADVERS' ? 1 : 0,
        ednsVersion: 0,
        // RFC 3225: copy the DO bit.
        flags: opt.flags & 0x8000,
        flag_do: opt.flag_do,
        options:
          ecs && built.rcode !== 'BADVERS'
            ? [
                {
                  code: ECS_OPTION_CODE,
                  ip: undefined,
                  data: echoClientSubnet(ecs, placement.scopePrefixLength),
                },
              ]
            : [],
      }
    : undefined;
  const headerFlags = (built.aa ? AA : 0) | (flags & RD) | rcodeBits(built.rcode);
  const full = {
    type: 'response' as const,
    id: query.id ?? 0,
    flags: headerFlags,
    questions: [q],
    answers: built.answers,
    authorities: built.authorities,
    additionals: [...built.additionals, ...(respOpt ? [respOpt] : [])],
  };
  const limit =
    ctx.transport === 'tcp'
      ? 65535
      : opt
        ? Math.min(Math.max(opt.udpPayloadSize, CLASSIC_UDP_BYTES), MAX_UDP_BYTES)
        : CLASSIC_UDP_BYTES;
  const meta = {
    regions: built.regions,
    locatedBy: placement.locatedBy,
    failOpen: built.failOpen,
  };
  let bytes: Buffer;
  try {
    bytes = packet.encode(full);
    if (bytes.length <= limit) return reply(bytes, built.rcode, meta);
    // Too big: send the question with TC set and let the client retry over TCP (RFC 7766).
    bytes = packet.encode({
      ...full,
      flags: headerFlags | TC,
      answers: [],
      authorities: [],
      additionals: respOpt ? [respOpt] : [],
    });
    return reply(bytes, built.rcode, { ...meta, truncated: true });
  } catch {
    // A name we cannot encode back (a label dns-packet decoded but rejects): the query was malformed.
    return reply(headerOnly(msg, RCODE.FORMERR), 'FORMERR');
  }
}
