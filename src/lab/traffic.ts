/**
 * The lab's traffic generator: simulated users around the world send a realistic mix (profile
 * writes, which the edge replays to the profile's home when it is elsewhere, likes, tags, settings,
 * reads with version tokens, transfers) to their nearest live edge, each paying its own WAN delay
 * both ways. Arrivals are Poisson at a modest rate
 * so the lab stays light on a small machine.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { greatCircleKm } from '../core/geo.js';
import type { LabRegion } from './plan.js';
import type { LabStats } from './stats.js';
import { makeUsers, type SimUser, userOneWayMs } from './users.js';

export interface TrafficOptions {
  /** Requests per second, all users together. */
  ratePerS: number;
  users: number;
  /** Edges the generator may use right now (the lab's live view). */
  liveEdges: () => LabRegion[];
  stats: LabStats;
  /** Collections present in this lab (eu-profiles only when it has an EU region). */
  hasEuProfiles: boolean;
  euRegions: string[];
  maxInFlight?: number;
}

type Op = { name: string; weight: number; run: (u: SimUser) => Req | undefined };
interface Req {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  body?: unknown;
  /** Send the user's token as Meridian-Min-Version. */
  withToken?: boolean;
  idempotencyKey?: string;
}

const POSTS = 12;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;

/**
 * @example
 *   const t = new TrafficGenerator({ ratePerS: 10, users: 60, liveEdges, stats, hasEuProfiles: true, euRegions: ['eu-west-1'] });
 *   t.start(); ... await t.stop();
 */
export class TrafficGenerator {
  private readonly users: SimUser[];
  private readonly agent = new Agent({ keepAliveTimeout: 4000, connections: 16, connect: { timeout: 2000 } });
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly pending = new Set<Promise<void>>();
  private sagasAvailable = true;
  private sagaCheckAfterMs = 0;
  private readonly avoid = new Map<string, number>();
  private readonly ops: Op[];
  dropped = 0;

  constructor(private readonly opts: TrafficOptions) {
    this.users = makeUsers(opts.users);
    this.ops = [
      {
        name: 'profile.read',
        weight: 22,
        run: (u) => ({ method: 'GET', path: `/v1/profiles/${u.id}`, withToken: true }),
      },
      {
        name: 'profile.write',
        weight: 10,
        run: (u) => ({
          method: 'PUT',
          path: `/v1/profiles/${u.id}`,
          body: { name: u.id, city: u.city, at: Date.now() },
        }),
      },
      {
        name: 'like',
        weight: 20,
        run: () => ({
          method: 'POST',
          path: `/v1/likes/post-${Math.floor(Math.random() * POSTS)}/increment`,
          body: { by: 1 },
        }),
      },
      {
        name: 'likes.read',
        weight: 10,
        run: () => ({ method: 'GET', path: `/v1/likes/post-${Math.floor(Math.random() * POSTS)}` }),
      },
      {
        name: 'tag',
        weight: 8,
        run: () => ({
          method: 'POST',
          path: `/v1/tags/post-${Math.floor(Math.random() * POSTS)}/${Math.random() < 0.75 ? 'add' : 'remove'}`,
          body: { members: [pick(['news', 'travel', 'food', 'music', 'sport', 'tech'])] },
        }),
      },
      {
        name: 'settings.write',
        weight: 8,
        // A shared key written from every region: last-writer-wins resolves the concurrent writes.
        run: (u) =>
          Math.random() < 0.4
            ? {
                method: 'PUT',
                path: '/v1/settings/site-theme',
                body: { theme: pick(['dark', 'light', 'sepia']), by: u.id },
              }
            : {
                method: 'PUT',
                path: `/v1/settings/${u.id}`,
                body: { lang: pick(['en', 'fr', 'ja', 'pt']), tz: u.city },
              },
      },
      {
        name: 'settings.read',
        weight: 8,
        run: (u) => ({ method: 'GET', path: `/v1/settings/${u.id}`, withToken: true }),
      },
      {
        name: 'eu-profile.write',
        weight: opts.hasEuProfiles ? 3 : 0,
        run: (u) => {
          // Only EU residents' data goes to eu-profiles (the edge replays it to an EU region).
          if (!(u.lat > 35 && u.lon > -12 && u.lon < 30)) return undefined;
          return { method: 'PUT', path: `/v1/eu-profiles/${u.id}`, body: { name: u.id, city: u.city } };
        },
      },
      {
        name: 'transfer',
        weight: 5,
        run: (u) => {
          if (!this.sagasAvailable && Date.now() < this.sagaCheckAfterMs) return undefined;
          // Never overwrite an existing balance (a restarted lab still has it): read first, create if missing.
          if (u.account === 'unknown') return { method: 'GET', path: `/v1/accounts/acct-${u.id}` };
          // Accounts are read-only to clients: opening one is the supported way to get a balance.
          if (u.account === 'missing') return { method: 'POST', path: `/v1/accounts/acct-${u.id}/open` };
          const to = pick(this.users.filter((x) => x.account === 'ready' && x.id !== u.id));
          if (!to) return undefined;
          const key = `${u.id}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
          return {
            method: 'POST',
            path: '/v1/sagas/transfer',
            body: { from: `acct-${u.id}`, to: `acct-${to.id}`, amount: 1 + Math.floor(Math.random() * 5) },
            idempotencyKey: key,
          };
        },
      },
    ];
  }

  get rate(): number {
    return this.opts.ratePerS;
  }

  setRate(ratePerS: number): void {
    this.opts.ratePerS = Math.max(0, ratePerS);
  }

  start(): void {
    if (this.timer) return;
    const tickMs = 50;
    this.timer = setInterval(() => {
      // Poisson arrivals: the number in one tick is drawn from the expected count.
      let expected = (this.opts.ratePerS * tickMs) / 1000;
      while (expected > 0) {
        if (Math.random() < Math.min(1, expected)) this.fire();
        expected -= 1;
      }
    }, tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.pending]);
    await this.agent.close();
  }

  private fire(): void {
    if (this.inFlight >= (this.opts.maxInFlight ?? 64)) {
      this.dropped++;
      return;
    }
    const u = pick(this.users);
    const op = this.pickOp();
    const req = op.run(u);
    if (!req) return;
    this.inFlight++;
    const p = this.send(u, op.name, req)
      .catch(() => {})
      .finally(() => {
        this.inFlight--;
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  private pickOp(): Op {
    const total = this.ops.reduce((s, o) => s + o.weight, 0);
    let r = Math.random() * total;
    for (const o of this.ops) {
      r -= o.weight;
      if (r <= 0) return o;
    }
    return this.ops[0] as Op;
  }

  /** The user's nearest edge among the live ones, skipping any that just failed for it. */
  private edgesFor(u: SimUser): LabRegion[] {
    const now = Date.now();
    return this.opts
      .liveEdges()
      .filter((e) => (this.avoid.get(e.id) ?? 0) < now)
      .sort((a, b) => greatCircleKm(u, a) - greatCircleKm(u, b));
  }

  private async send(u: SimUser, opName: string, req: Req): Promise<void> {
    const started = Date.now();
    const candidates = this.edgesFor(u);
    // Like a client with two DNS answers: try the nearest edge, then the next one on a connection error.
    for (let attempt = 0; attempt < 2; attempt++) {
      const edge = candidates[attempt];
      if (!edge) break;
      const oneWayMs = userOneWayMs(u, edge);
      await sleep(oneWayMs);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'meridian-client-location': `${u.lat.toFixed(2)},${u.lon.toFixed(2)}`,
      };
      if (req.withToken && u.token) headers['meridian-min-version'] = u.token;
      if (req.idempotencyKey) headers['idempotency-key'] = req.idempotencyKey;
      if (u.cookies.size > 0) headers.cookie = [...u.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      try {
        const res = await request(`${edge.edgeUrl}${req.path}`, {
          method: req.method,
          headers,
          body: req.body === undefined ? undefined : JSON.stringify(req.body),
          dispatcher: this.agent,
          headersTimeout: 8000,
          bodyTimeout: 8000,
        });
        const text = await res.body.text();
        await sleep(oneWayMs);
        const served = res.headers['meridian-region'];
        const token = res.headers['meridian-version'];
        if (typeof token === 'string' && res.statusCode < 300) u.token = token;
        this.takeCookies(u, res.headers['set-cookie']);
        if (opName === 'transfer') this.noteTransfer(u, req, res.statusCode, text);
        this.opts.stats.record({
          atMs: Date.now(),
          edge: edge.id,
          served: typeof served === 'string' ? served : undefined,
          op: opName,
          status: res.statusCode,
          latencyMs: Date.now() - started,
        });
        // A user who just found it has no account opens one at once (then transfers on later turns);
        // only after the read, so a refused open is not retried in a loop that never ends.
        if (opName === 'transfer' && u.account === 'missing' && req.method === 'GET') {
          await this.send(u, 'transfer', { method: 'POST', path: `/v1/accounts/acct-${u.id}/open` });
        }
        return;
      } catch {
        this.avoid.set(edge.id, Date.now() + 3000);
        this.opts.stats.record({
          atMs: Date.now(),
          edge: edge.id,
          served: undefined,
          op: opName,
          status: 0,
          latencyMs: Date.now() - started,
        });
      }
    }
  }

  private takeCookies(u: SimUser, raw: string | string[] | undefined): void {
    if (!raw) return;
    for (const line of Array.isArray(raw) ? raw : [raw]) {
      const first = line.split(';')[0] ?? '';
      const eq = first.indexOf('=');
      if (eq > 0) u.cookies.set(first.slice(0, eq).trim(), first.slice(eq + 1).trim());
    }
  }

  private noteTransfer(u: SimUser, req: Req, status: number, body: string): void {
    if (req.path.startsWith('/v1/accounts/')) {
      if (req.method === 'GET') u.account = status === 200 ? 'ready' : status === 404 ? 'missing' : 'unknown';
      else if (status < 300 || status === 421) u.account = 'ready';
      return;
    }
    if (req.path.startsWith('/v1/sagas') && (status === 404 || status === 405) && !body.includes('"saga')) {
      // No saga endpoint in this build yet: look again in a minute.
      this.sagasAvailable = false;
      this.sagaCheckAfterMs = Date.now() + 60_000;
    } else if (req.path.startsWith('/v1/sagas') && status < 300) {
      this.sagasAvailable = true;
    }
  }
}
