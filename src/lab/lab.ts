/**
 * The local multi-region lab: writes the config, starts the WAN emulator, one region node and one
 * edge per region and the GeoDNS server as child processes, watches their health, measures
 * replication lag, runs the traffic generator and serves the dashboard and lab API. Chaos actions
 * arrive here from the API.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MeridianConfig } from '../adapters/config.js';
import { type ChaosAction, describeChaos } from './chaos.js';
import { queryA } from './dns-query.js';
import { type LabPaths, type LabStoreKind, labPaths, readAdminToken, writeLabConfig } from './lab-config.js';
import { probeLag } from './lag-probe.js';
import { euRegions, LAB_HOST, LAB_PORT, type LabPlan, type LabRegion, labPlan } from './plan.js';
import { busyEndpoints, type Endpoint } from './ports.js';
import { type Health, HealthPoller } from './probes.js';
import { LabStats, type StatsSnapshot } from './stats.js';
import { type ChildState, LAB_CHILD_NICE, Supervisor } from './supervisor.js';
import { TrafficGenerator } from './traffic.js';
import { CITIES } from './users.js';
import type { WanControl, WanLinkState } from './wan-control.js';
import { startWan } from './wan-glue.js';

export interface LabOptions {
  dir: string;
  regions: string[];
  store: LabStoreKind;
  traffic: boolean;
  ratePerS: number;
  /** Serve the dashboard and lab API (on 127.0.0.1:8080). */
  api: boolean;
  log: (line: string) => void;
  healthyTimeoutMs?: number;
}

export interface RegionView {
  id: string;
  name: string;
  index: number;
  lat: number;
  lon: number;
  nodeUrl: string;
  edgeUrl: string;
  node: Health;
  edge: Health;
  nodeProcess: ChildState | 'absent';
  edgeProcess: ChildState | 'absent';
  nodeStatus: string | undefined;
  skewMs: number;
  conflicts: number | undefined;
  edgeView: unknown;
  sagas: unknown;
}

export interface LabState {
  startedAtMs: number;
  nowMs: number;
  regions: RegionView[];
  links: (WanLinkState & { lag?: StatsSnapshot['lag'][string] })[];
  stats: StatsSnapshot;
  dns: { address: string; zone: string; name: string; answer: string[] | undefined };
  traffic: { on: boolean; ratePerS: number };
  /** Where the simulated users live (the map draws them with a line to their nearest live edge). */
  cities: { name: string; lat: number; lon: number }[];
}

export class Lab {
  readonly plan: LabPlan;
  readonly paths: LabPaths;
  readonly stats = new LabStats();
  readonly startedAtMs = Date.now();
  cfg!: MeridianConfig;
  private readonly sup: Supervisor;
  private wan: WanControl | undefined;
  private poller!: HealthPoller;
  private traffic: TrafficGenerator | undefined;
  private readonly skewMs = new Map<string, number>();
  private lagTimer: NodeJS.Timeout | undefined;
  private dnsTimer: NodeJS.Timeout | undefined;
  private dnsAnswer: string[] | undefined;
  private closeApi: (() => Promise<void>) | undefined;
  /** The dashboard with its one-time login token: the page never hands out a secret itself. */
  private dashboardUrl = '';
  private stopping = false;

  private constructor(private readonly opts: LabOptions) {
    this.plan = labPlan(opts.regions);
    this.paths = labPaths(opts.dir);
    this.sup = new Supervisor(
      opts.dir,
      (e) => {
        if (e.type === 'exited' && !e.expected && !this.stopping) {
          this.stats.event(
            'process',
            `${e.name} exited unexpectedly (code ${e.code}, signal ${e.signal}); see ${this.logOf(e.name)}`,
          );
          opts.log(`! ${e.name} exited (code ${e.code}, signal ${e.signal}); log: ${this.logOf(e.name)}`);
        }
      },
      LAB_CHILD_NICE,
    );
  }

  logOf(name: string): string {
    return join(this.paths.logs, `${name.replace(/[^a-z0-9.-]/gi, '_')}.log`);
  }

  /** Every fixed address of the plan (used for the busy check and by tests). */
  endpoints(): Endpoint[] {
    const eps: Endpoint[] = [];
    if (this.opts.api) eps.push({ what: 'dashboard and lab API', host: LAB_HOST, port: LAB_PORT });
    eps.push({ what: 'GeoDNS (udp)', host: this.plan.dns.host, port: this.plan.dns.port, udp: true });
    eps.push({ what: 'GeoDNS (tcp)', host: this.plan.dns.host, port: this.plan.dns.port });
    for (const r of this.plan.regions) {
      eps.push({ what: `${r.id} node`, host: r.host, port: 7070 });
      eps.push({ what: `${r.id} edge`, host: r.host, port: 8080 });
    }
    for (const l of this.plan.links)
      eps.push({ what: `WAN ${l.from}->${l.to}`, host: l.listenHost, port: l.listenPort });
    return eps;
  }

  /**
   * Starts everything and resolves once the lab is healthy (or throws, having stopped what it started).
   * @example const lab = await Lab.start({ dir: '.meridian', regions: ['us-east-1', 'eu-west-1'], store: 'sqlite', traffic: true, ratePerS: 8, api: true, log: console.log });
   */
  static async start(opts: LabOptions): Promise<Lab> {
    const lab = new Lab(opts);
    try {
      await lab.boot();
    } catch (e) {
      await lab.stop();
      throw e;
    }
    return lab;
  }

  private async boot(): Promise<void> {
    const { log } = this.opts;
    const t0 = Date.now();
    const reaped = Supervisor.reapOrphans(this.opts.dir);
    if (reaped.length > 0)
      log(`stopped ${reaped.length} process(es) left by an earlier lab: ${reaped.join(', ')}`);
    const busy = await busyEndpoints(this.endpoints());
    if (busy.length > 0) {
      const list = busy
        .map((b) => `  ${b.ep.what} ${b.ep.host}:${b.ep.port}${b.ep.udp ? '/udp' : ''}: ${b.reason}`)
        .join('\n');
      throw new Error(
        `the lab's addresses are taken (is another lab running? stop it with Ctrl-C first):\n${list}`,
      );
    }
    this.cfg = writeLabConfig(this.plan, this.paths, this.opts.store);
    this.stats.event(
      'lab',
      `lab starting: ${this.plan.regions.map((r) => r.id).join(', ')}, store ${this.opts.store}`,
    );
    log(`[1/5] config written to ${this.paths.config}`);
    this.wan = await startWan(this.plan);
    log(`[2/5] WAN emulator: ${this.plan.links.length} directed links (one-way = RTT/2)`);
    this.poller = new HealthPoller(this.plan.regions, (region, what, to, from) => {
      // Still starting is not news: report first-seen "up" and every later change.
      if (this.stopping || (from === 'unknown' && to === 'down')) return;
      this.stats.event('health', `${region} ${what} is ${to}`);
    });
    for (const r of this.plan.regions) this.sup.start(this.nodeSpec(r));
    for (const r of this.plan.regions) this.sup.start(this.edgeSpec(r));
    this.sup.start({ name: 'dns', args: ['dns', '--config', this.paths.config] });
    log(
      `[3/5] started ${this.plan.regions.length} region nodes, ${this.plan.regions.length} edges and GeoDNS; logs in ${this.paths.logs}`,
    );
    this.poller.start();
    await this.waitHealthy(this.opts.healthyTimeoutMs ?? 30_000);
    log(`[4/5] healthy after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    this.startBackground();
    if (this.opts.api) {
      const { startLabApi } = await import('./api.js');
      const api = await startLabApi(this, {
        host: LAB_HOST,
        port: LAB_PORT,
        // writeLabConfig always writes one (the schema makes it optional: only the lab reads it).
        adminToken: this.cfg.secrets.adminToken ?? readAdminToken(this.paths.dir),
      });
      this.closeApi = api.close;
      this.dashboardUrl = api.dashboardUrl;
    }
    if (this.opts.traffic) this.setTraffic(true, this.opts.ratePerS);
    log(
      `[5/5] ${this.opts.api ? `dashboard on ${this.dashboardUrl}` : 'no dashboard'}; traffic ${this.opts.traffic ? `on, ${this.opts.ratePerS} req/s` : 'off'}`,
    );
    this.stats.event('lab', `lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  private nodeSpec(r: LabRegion) {
    const skew = this.skewMs.get(r.id) ?? 0;
    const args = ['region', '--config', this.paths.config, '--region', r.id];
    if (skew !== 0) args.push('--clock-skew-ms', String(skew));
    return { name: `node:${r.id}`, args, env: { MERIDIAN_CLOCK_SKEW_MS: String(skew) } };
  }

  private edgeSpec(r: LabRegion) {
    return { name: `edge:${r.id}`, args: ['edge', '--config', this.paths.config, '--edge', r.id] };
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let missing: string[] = [];
    while (Date.now() < deadline) {
      await this.poller.pollOnce();
      await this.pollDns();
      missing = [];
      for (const r of this.plan.regions) {
        const h = this.poller.state(r.id);
        if (h.node !== 'up') missing.push(`node:${r.id}`);
        if (h.edge !== 'up') missing.push(`edge:${r.id}`);
      }
      if (!this.dnsAnswer || this.dnsAnswer.length === 0) missing.push('dns');
      for (const name of missing) {
        if (!this.sup.isRunning(name)) {
          throw new Error(`${name} exited during start-up; its log:\n${this.tail(name)}`);
        }
      }
      if (missing.length === 0) {
        for (const c of this.sup.list()) this.sup.markRunning(c.name);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `not healthy within ${timeoutMs / 1000} s: ${missing.join(', ')}\n${missing.map((m) => `--- ${this.logOf(m)}\n${this.tail(m)}`).join('\n')}`,
    );
  }

  private tail(name: string, lines = 15): string {
    const f = this.logOf(name);
    if (!existsSync(f)) return '(no log)';
    return readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  private async pollDns(): Promise<void> {
    try {
      const a = await queryA(this.plan.dns.host, this.plan.dns.port, this.plan.dns.name, { timeoutMs: 500 });
      this.dnsAnswer = a.addresses;
    } catch {
      this.dnsAnswer = undefined;
    }
  }

  private startBackground(): void {
    let round = 0;
    this.lagTimer = setInterval(() => {
      // One origin per tick, round robin: every link is measured every (regions x 700 ms).
      const origin = this.plan.regions[round++ % this.plan.regions.length] as LabRegion;
      if (this.poller.state(origin.id).node !== 'up') return;
      const peers = this.plan.regions.filter(
        (p) => p.id !== origin.id && this.poller.state(p.id).node === 'up',
      );
      void probeLag(origin, peers).then((results) => {
        for (const r of results)
          if (r.lagMs !== undefined) this.stats.recordLag(r.from, r.to, r.atMs, r.lagMs);
      });
    }, 700);
    this.lagTimer.unref();
    this.dnsTimer = setInterval(() => void this.pollDns(), 2000);
    this.dnsTimer.unref();
  }

  /** The edges a client can reach right now, as the lab sees them. */
  liveEdges(): LabRegion[] {
    return this.plan.regions.filter((r) => this.poller.state(r.id).edge === 'up');
  }

  setTraffic(on: boolean, ratePerS?: number): void {
    if (on && !this.traffic) {
      const eu = euRegions(this.plan);
      this.traffic = new TrafficGenerator({
        ratePerS: ratePerS ?? this.opts.ratePerS,
        users: 120,
        liveEdges: () => this.liveEdges(),
        stats: this.stats,
        hasEuProfiles: eu.length > 0,
        euRegions: eu,
      });
      this.traffic.start();
      this.stats.event('traffic', `traffic on at ${this.traffic.rate} req/s`);
    } else if (on && this.traffic && ratePerS !== undefined) {
      this.traffic.setRate(ratePerS);
      this.stats.event('traffic', `traffic rate ${ratePerS} req/s`);
    } else if (!on && this.traffic) {
      const t = this.traffic;
      this.traffic = undefined;
      void t.stop();
      this.stats.event('traffic', 'traffic off');
    }
  }

  private region(id: string): LabRegion {
    const r = this.plan.regions.find((x) => x.id === id);
    if (!r)
      throw new Error(`unknown region '${id}'; the lab has ${this.plan.regions.map((x) => x.id).join(', ')}`);
    return r;
  }

  private linkPairs(a: string, b: string | undefined): [string, string][] {
    this.region(a);
    const others = b ? [this.region(b).id] : this.plan.regions.map((r) => r.id).filter((x) => x !== a);
    return others.flatMap((o): [string, string][] => [
      [a, o],
      [o, a],
    ]);
  }

  /** Applies one chaos action; returns a one-line description of what was done. */
  async chaos(action: ChaosAction): Promise<string> {
    const wan = this.wan;
    if (!wan) throw new Error('the lab is not running');
    switch (action.action) {
      case 'kill': {
        const r = this.region(action.region);
        await this.sup.kill(`node:${r.id}`);
        if (action.withEdge) await this.sup.kill(`edge:${r.id}`);
        break;
      }
      case 'restart': {
        const r = this.region(action.region);
        if (!this.sup.isRunning(`node:${r.id}`)) this.sup.start(this.nodeSpec(r));
        if (!this.sup.isRunning(`edge:${r.id}`)) this.sup.start(this.edgeSpec(r));
        break;
      }
      case 'partition':
        for (const [x, y] of this.linkPairs(action.a, action.b)) wan.setCut(x, y, true);
        break;
      case 'heal': {
        const pairs = action.a
          ? this.linkPairs(action.a, action.b)
          : this.plan.links.map((l): [string, string] => [l.from, l.to]);
        for (const [x, y] of pairs) wan.setCut(x, y, false);
        break;
      }
      case 'delay': {
        if (action.ms < 0 || action.ms > 10_000) throw new Error('delay must be 0 to 10000 ms');
        for (const [x, y] of this.linkPairs(action.a, action.b)) wan.setDelay(x, y, action.ms);
        break;
      }
      case 'skew': {
        const r = this.region(action.region);
        if (Math.abs(action.ms) > 3_600_000) throw new Error('skew must be within an hour');
        this.skewMs.set(r.id, action.ms);
        await this.sup.stop(`node:${r.id}`);
        this.sup.start(this.nodeSpec(r));
        break;
      }
    }
    const text = describeChaos(action);
    this.stats.event('chaos', text);
    return text;
  }

  state(): LabState {
    const now = Date.now();
    const ids = this.plan.regions.map((r) => r.id);
    const stats = this.stats.snapshot(now, ids);
    const procs = new Map(this.sup.list().map((c) => [c.name, c.state]));
    return {
      startedAtMs: this.startedAtMs,
      nowMs: now,
      regions: this.plan.regions.map((r) => {
        const h = this.poller.state(r.id);
        return {
          id: r.id,
          name: r.name,
          index: r.index,
          lat: r.lat,
          lon: r.lon,
          nodeUrl: r.nodeUrl,
          edgeUrl: r.edgeUrl,
          node: h.node,
          edge: h.edge,
          nodeProcess: procs.get(`node:${r.id}`) ?? 'absent',
          edgeProcess: procs.get(`edge:${r.id}`) ?? 'absent',
          nodeStatus: h.nodeStatus,
          skewMs: this.skewMs.get(r.id) ?? 0,
          conflicts: h.conflicts,
          edgeView: h.edgeView,
          sagas: h.sagas,
        };
      }),
      links: (this.wan?.links() ?? []).map((l) => {
        const lag = stats.lag[`${l.from}>${l.to}`];
        return lag ? { ...l, lag } : { ...l };
      }),
      stats,
      dns: {
        address: `${this.plan.dns.host}:${this.plan.dns.port}`,
        zone: this.plan.dns.zone,
        name: this.plan.dns.name,
        answer: this.dnsAnswer,
      },
      traffic: { on: this.traffic !== undefined, ratePerS: this.traffic?.rate ?? 0 },
      cities: CITIES.map((c) => ({ name: c.name, lat: c.lat, lon: c.lon })),
    };
  }

  /** The endpoint table printed at start-up. */
  endpointTable(): string {
    const rows: [string, string][] = [
      ['dashboard + lab API', this.opts.api ? this.dashboardUrl : '(off)'],
      [
        'GeoDNS (udp+tcp)',
        `${this.plan.dns.host}:${this.plan.dns.port}  zone ${this.plan.dns.zone}, name ${this.plan.dns.name}`,
      ],
    ];
    for (const r of this.plan.regions) {
      rows.push([`${r.id} edge`, r.edgeUrl]);
      rows.push([`${r.id} node`, r.nodeUrl]);
    }
    rows.push(['config', this.paths.config]);
    rows.push(['admin token', this.paths.adminToken]);
    rows.push(['logs', this.paths.logs]);
    const w = Math.max(...rows.map((r) => r[0].length));
    return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
  }

  /** Stops everything this lab started; returns pids still alive afterwards (should be none). */
  async stop(): Promise<number[]> {
    this.stopping = true;
    if (this.lagTimer) clearInterval(this.lagTimer);
    if (this.dnsTimer) clearInterval(this.dnsTimer);
    this.poller?.stop();
    const t = this.traffic;
    this.traffic = undefined;
    await Promise.allSettled([t?.stop(), this.closeApi?.()]);
    await this.sup.stopAll();
    await this.wan?.close();
    this.wan = undefined;
    return this.sup.leftovers();
  }

  /** Synchronous last resort when the lab process itself is dying. */
  killChildrenNow(): void {
    this.sup.killAllNow();
  }
}
