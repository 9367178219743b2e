/**
 * The WAN emulator: user-space TCP proxies, one per directed link between regions, that add the
 * one-way delay (plus jitter and loss) of each direction and can cut, partition and heal links
 * at runtime, so that region nodes on one machine see real cross-region latencies.
 */
import { type HostPort, Link, type LinkState, type LinkStats } from './link.js';
import type { PathConditions } from './pipe.js';

export interface AddLinkOptions {
  /** The region whose traffic enters this link (it connects to `listen`). */
  from: string;
  /** The region whose node `target` is. */
  to: string;
  /** Where the proxy listens (port 0: any free port; the answer says which). */
  listen?: Partial<HostPort>;
  target: HostPort;
  /** One-way delay from -> to; also to -> from unless that direction was set already. */
  delayMs?: number;
  jitterMs?: number;
  lossRate?: number;
}

export interface WanOptions {
  /** Uniform [0, 1) source for jitter and loss (default Math.random; tests pass a seeded one). */
  random?: () => number;
  /** Emulate the TCP handshake RTT on new connections (default true). */
  handshake?: boolean;
  /** Minimum retransmission timeout a lost segment costs (default 200 ms, Linux's minimum RTO). */
  minRtoMs?: number;
}

export type CutMode = 'cut' | 'partition';

export interface PathSettings {
  delayMs: number;
  jitterMs: number;
  lossRate: number;
}

const pair = (from: string, to: string): string => `${from}>${to}`;

/**
 * @example
 *   const wan = new WanEmulator();
 *   const via = await wan.addLink({ from: 'us-east-1', to: 'eu-west-1', target: { host: '127.0.2.1', port: 7070 }, delayMs: 38 });
 *   // us-east-1 now reaches eu-west-1's node at http://${via.host}:${via.port}
 *   wan.cut('us-east-1', 'eu-west-1', 'partition');
 *   wan.heal('us-east-1', 'eu-west-1');
 *   await wan.close();
 */
export class WanEmulator {
  private readonly links = new Map<string, Link>();
  private readonly paths = new Map<string, PathSettings>();
  private readonly random: () => number;
  private readonly handshake: boolean;
  private readonly minRtoMs: number;

  constructor(options: WanOptions = {}) {
    this.random = options.random ?? Math.random;
    this.handshake = options.handshake ?? true;
    this.minRtoMs = options.minRtoMs ?? 200;
  }

  /** Starts the proxy for traffic from `from` to `to`'s `target`; resolves with where it listens. */
  async addLink(o: AddLinkOptions): Promise<HostPort> {
    const id = pair(o.from, o.to);
    if (this.links.has(id)) throw new Error(`link ${o.from} -> ${o.to} exists already`);
    const given: Partial<PathSettings> = {};
    if (o.delayMs !== undefined) given.delayMs = o.delayMs;
    if (o.jitterMs !== undefined) given.jitterMs = o.jitterMs;
    if (o.lossRate !== undefined) given.lossRate = o.lossRate;
    if (!this.paths.has(pair(o.to, o.from))) this.setPath(o.to, o.from, given);
    this.setPath(o.from, o.to, given);
    const link = new Link({
      from: o.from,
      to: o.to,
      listen: { host: o.listen?.host ?? '127.0.0.1', port: o.listen?.port ?? 0 },
      target: o.target,
      forward: () => this.conditions(o.from, o.to),
      reverse: () => this.conditions(o.to, o.from),
      random: this.random,
      handshake: this.handshake,
    });
    const address = await link.listen();
    this.links.set(id, link);
    return address;
  }

  /** Sets the one-way conditions of the direction `from` -> `to` (used by both links between them). */
  setPath(from: string, to: string, settings: Partial<PathSettings>): void {
    const cur = this.paths.get(pair(from, to)) ?? { delayMs: 0, jitterMs: 0, lossRate: 0 };
    const next = { ...cur, ...settings };
    if (!(next.delayMs >= 0) || !(next.jitterMs >= 0) || !(next.lossRate >= 0 && next.lossRate < 1)) {
      throw new Error(`invalid path settings for ${from} -> ${to}: ${JSON.stringify(settings)}`);
    }
    this.paths.set(pair(from, to), next);
  }

  /** One-way delay of `from` -> `to`; takes effect for bytes arriving from now on. */
  setDelay(from: string, to: string, delayMs: number): void {
    this.setPath(from, to, { delayMs });
  }

  /** Both directions between `a` and `b`: one-way = rttMs / 2. */
  setRtt(a: string, b: string, rttMs: number): void {
    this.setDelay(a, b, rttMs / 2);
    this.setDelay(b, a, rttMs / 2);
  }

  path(from: string, to: string): PathSettings {
    return this.paths.get(pair(from, to)) ?? { delayMs: 0, jitterMs: 0, lossRate: 0 };
  }

  private conditions(from: string, to: string): PathConditions {
    const p = this.path(from, to);
    const rtt = p.delayMs + this.path(to, from).delayMs;
    return { ...p, rtoMs: Math.max(this.minRtoMs, rtt) };
  }

  private link(from: string, to: string): Link {
    const l = this.links.get(pair(from, to));
    if (!l) throw new Error(`no link ${from} -> ${to}`);
    return l;
  }

  /** Cuts the link `from` -> `to` (connections `from` opens to `to`); see LinkState for the modes. */
  cut(from: string, to: string, mode: CutMode = 'cut'): void {
    this.link(from, to).setState(mode);
  }

  heal(from: string, to: string): void {
    this.link(from, to).setState('up');
  }

  /** Cuts both directions between `a` and `b`. */
  split(a: string, b: string, mode: CutMode = 'partition'): void {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      if (this.links.has(pair(x, y))) this.cut(x, y, mode);
    }
  }

  /** Cuts every link into and out of `region`. */
  isolate(region: string, mode: CutMode = 'partition'): void {
    for (const l of this.links.values()) {
      const s = l.stats();
      if (s.from === region || s.to === region) l.setState(mode);
    }
  }

  /** Heals every link into and out of `region`, or every link when no region is given. */
  healAll(region?: string): void {
    for (const l of this.links.values()) {
      const s = l.stats();
      if (region === undefined || s.from === region || s.to === region) l.setState('up');
    }
  }

  state(from: string, to: string): LinkState {
    return this.link(from, to).state;
  }

  stats(): (LinkStats & { delayMs: number; reverseDelayMs: number; jitterMs: number; lossRate: number })[] {
    return [...this.links.values()].map((l) => {
      const s = l.stats();
      const p = this.path(s.from, s.to);
      return { ...s, ...p, reverseDelayMs: this.path(s.to, s.from).delayMs };
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
    this.links.clear();
  }
}
