/** The GeoDNS server: authoritative answers that send each client to its nearest healthy region's edge. */
export { answerQuery, chooseRegions, type Outcome, type Router } from './answer.js';
export { type ClientSubnet, echoClientSubnet, parseClientSubnet } from './ecs.js';
export { EdgeHealthMonitor, httpProbe, type Probe, type RegionHealthView } from './health.js';
export { type DnsServer, type DnsServerOptions, type DnsStats, startDnsServer } from './server.js';
export { FAIL_OPEN_TTL_S, type RegionTarget, type ZonePlan, zonePlan } from './zone.js';
