/**
 * Who may use the lab's dashboard and API. No unauthenticated request is ever given a secret:
 * `npm start` prints a dashboard URL with a one-time login token (Jupyter style); opening it trades
 * the token for an HttpOnly, SameSite=Strict session cookie and redirects to `/`. API calls carry
 * that cookie (the page) or `Authorization: Bearer <admin token>` (`meridian chaos`, scripts).
 * Mutations are also refused when the browser says they come from another site (Origin,
 * Sec-Fetch-Site), and a cookie only counts on the lab's own host names (DNS rebinding).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'meridian_lab_session';
/** Sessions kept at once; the oldest is forgotten first (each needs a login token to create). */
const MAX_SESSIONS = 64;

function sameSecret(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The lab's authentication state, for one server's lifetime.
 * @example
 * const auth = new LabAuth(adminToken, '127.0.0.1', 8080);
 * log(`dashboard on ${auth.loginUrl()}`);
 */
export class LabAuth {
  private loginToken: string | undefined = randomBytes(24).toString('base64url');
  private readonly sessions = new Set<string>();
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;

  constructor(
    private readonly adminToken: string,
    private readonly host: string,
    private readonly port: number,
  ) {
    this.hosts = new Set([`${host}:${port}`, `localhost:${port}`]);
    this.origins = new Set([...this.hosts].map((h) => `http://${h}`));
  }

  /** The URL to open once; undefined after it was used. */
  loginUrl(): string | undefined {
    return this.loginToken === undefined
      ? undefined
      : `http://${this.host}:${this.port}/?token=${this.loginToken}`;
  }

  /** The request names the lab by one of its own loopback names (not a rebound foreign name). */
  ownHost(req: IncomingMessage): boolean {
    return this.hosts.has(req.headers.host ?? '');
  }

  /**
   * Trades the one-time login token (or the admin token, which is reusable and readable only by the
   * lab's user in .meridian/admin-token) for a new session id; undefined when it is neither.
   */
  login(given: string): string | undefined {
    const once = this.loginToken !== undefined && sameSecret(given, this.loginToken);
    if (!once && !sameSecret(given, this.adminToken)) return undefined;
    if (once) this.loginToken = undefined;
    const id = randomBytes(24).toString('base64url');
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.values().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    this.sessions.add(id);
    return id;
  }

  sessionCookie(id: string): string {
    return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** How the request proves itself, if it does. */
  authenticated(req: IncomingMessage): 'bearer' | 'cookie' | undefined {
    const h = req.headers.authorization ?? '';
    if (h.startsWith('Bearer ') && sameSecret(h.slice(7).trim(), this.adminToken)) return 'bearer';
    const id = cookie(req, SESSION_COOKIE);
    if (id !== undefined && this.ownHost(req) && this.sessions.has(id)) return 'cookie';
    return undefined;
  }

  /** Why a mutation is refused as cross-site, if it is: what the browser says about its origin. */
  crossSite(req: IncomingMessage): string | undefined {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
    const origin = req.headers.origin;
    if (origin !== undefined && !this.origins.has(origin)) return `Origin: ${origin}`;
    return undefined;
  }
}
