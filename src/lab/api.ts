/**
 * The lab's HTTP server on 127.0.0.1:8080: the dashboard (web/, with its libraries served from
 * node_modules, since the lab runs offline), a live state stream (Server-Sent Events), and the
 * chaos and traffic mutations. The page and every /api route need a session (see api-auth.ts): no
 * unauthenticated request is ever served a secret.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { projectRoot } from '../adapters/region-table.js';
import { LabAuth } from './api-auth.js';
import { chaosFromJson } from './chaos.js';
import type { Lab } from './lab.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** The dashboard's libraries, by the name the page asks for. */
const VENDOR: Record<string, string> = {
  'd3-array.js': 'node_modules/d3-array/dist/d3-array.min.js',
  'd3-geo.js': 'node_modules/d3-geo/dist/d3-geo.min.js',
  'topojson-client.js': 'node_modules/topojson-client/dist/topojson-client.min.js',
  'countries-110m.json': 'node_modules/world-atlas/countries-110m.json',
  'uPlot.js': 'node_modules/uplot/dist/uPlot.iife.min.js',
  'uPlot.css': 'node_modules/uplot/dist/uPlot.min.css',
};

/** What an unauthenticated `GET /` gets: how to sign in, and nothing secret. */
const SIGN_IN_PAGE = (why: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Meridian lab: sign in</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/web/style.css"></head>
<body><main class="sign-in"><h1>Meridian <span>lab</span></h1><p>${why}</p>
<p>Open the dashboard with the link <code>npm start</code> printed
(<code>http://127.0.0.1:8080/?token=…</code>; it works once), or with
<code>http://127.0.0.1:8080/?token=</code> followed by the contents of <code>.meridian/admin-token</code>.</p>
</main></body></html>
`;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: { code, message } });
}

function page(res: ServerResponse, status: number, why: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  res.end(SIGN_IN_PAGE(why));
}

async function readBody(req: IncomingMessage, maxBytes = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > maxBytes) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.length === 0 ? {} : JSON.parse(text);
}

/** What the API needs of the lab. */
export type LabApiHost = Pick<Lab, 'stats' | 'chaos' | 'setTraffic'> & { state(): { traffic: unknown } };

export interface LabApi {
  /** The dashboard URL with its one-time login token, to print for the user. */
  dashboardUrl: string;
  close(): Promise<void>;
}

/**
 * Starts the lab API.
 * @example const api = await startLabApi(lab, { host: '127.0.0.1', port: 8080, adminToken }); log(api.dashboardUrl);
 */
export async function startLabApi(
  lab: LabApiHost,
  opts: { host: string; port: number; adminToken: string },
): Promise<LabApi> {
  const root = projectRoot();
  const webDir = join(root, 'web');
  const streams = new Set<ServerResponse>();
  // Built once the port is known (tests listen on port 0); no request is handled before that.
  let auth = new LabAuth(opts.adminToken, opts.host, opts.port);

  const serveFile = (res: ServerResponse, file: string, transform?: (s: string) => string): void => {
    try {
      const raw = readFileSync(file);
      const body = transform ? transform(raw.toString('utf8')) : raw;
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
        'referrer-policy': 'no-referrer',
      });
      res.end(body);
    } catch {
      fail(res, 404, 'not_found', 'no such file');
    }
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://lab');
      const path = url.pathname;
      try {
        if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
          const given = url.searchParams.get('token');
          if (given !== null) {
            const id = auth.ownHost(req) ? auth.login(given) : undefined;
            if (id === undefined) {
              return page(res, 401, 'That link was already used, or its token is wrong.');
            }
            // Redirected so the token leaves the address bar and the history.
            res.writeHead(303, {
              location: '/',
              'set-cookie': auth.sessionCookie(id),
              'cache-control': 'no-store',
              'referrer-policy': 'no-referrer',
            });
            res.end();
            return;
          }
          if (auth.authenticated(req) !== 'cookie') return page(res, 401, 'This browser is not signed in.');
          serveFile(res, join(webDir, 'index.html'));
          return;
        }
        if (req.method === 'GET' && path.startsWith('/web/')) {
          const rel = normalize(path.slice(5)).replace(/^(\.\.[/\\])+/, '');
          serveFile(res, join(webDir, rel));
          return;
        }
        if (req.method === 'GET' && path.startsWith('/vendor/')) {
          const file = VENDOR[path.slice(8)];
          if (!file) return fail(res, 404, 'not_found', 'no such library');
          serveFile(res, join(root, file));
          return;
        }
        if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
        if (path.startsWith('/api/') && auth.authenticated(req) === undefined) {
          return fail(
            res,
            401,
            'unauthorized',
            'open the dashboard URL npm start printed, or send Authorization: Bearer <token from .meridian/admin-token>',
          );
        }
        if (req.method === 'GET' && path === '/api/state') return json(res, 200, lab.state());
        if (req.method === 'GET' && path === '/api/events') return json(res, 200, lab.stats.events);
        if (req.method === 'GET' && path === '/api/stream') {
          res.writeHead(200, {
            'content-type': 'text/event-stream',
            'cache-control': 'no-store',
            connection: 'keep-alive',
          });
          res.write(`event: events\ndata: ${JSON.stringify(lab.stats.events.slice(-100))}\n\n`);
          res.write(`event: state\ndata: ${JSON.stringify(lab.state())}\n\n`);
          streams.add(res);
          req.on('close', () => streams.delete(res));
          return;
        }
        if (req.method === 'POST' && path.startsWith('/api/')) {
          const crossSite = auth.crossSite(req);
          if (crossSite !== undefined) {
            return fail(res, 403, 'cross_site', `refused a mutation from another site (${crossSite})`);
          }
          let body: unknown;
          try {
            body = await readBody(req);
          } catch (e) {
            return fail(res, 400, 'bad_request', `malformed JSON: ${(e as Error).message}`);
          }
          if (path === '/api/chaos') {
            let action: ReturnType<typeof chaosFromJson>;
            try {
              action = chaosFromJson(body);
            } catch (e) {
              return fail(res, 400, 'bad_request', (e as Error).message);
            }
            try {
              const text = await lab.chaos(action);
              return json(res, 200, { ok: true, done: text });
            } catch (e) {
              return fail(res, 422, 'chaos_failed', (e as Error).message);
            }
          }
          if (path === '/api/traffic') {
            const b = body as { on?: unknown; ratePerS?: unknown };
            const rate =
              typeof b.ratePerS === 'number' && b.ratePerS >= 0 && b.ratePerS <= 500 ? b.ratePerS : undefined;
            lab.setTraffic(b.on !== false, rate);
            return json(res, 200, { ok: true, traffic: lab.state().traffic });
          }
        }
        fail(res, 404, 'not_found', `no route ${req.method} ${path}`);
      } catch (e) {
        if (!res.headersSent) fail(res, 500, 'internal', (e as Error).message);
        else res.end();
      }
    })();
  });

  const offEvent = lab.stats.onEvent((e) => {
    for (const s of streams) s.write(`event: event\ndata: ${JSON.stringify(e)}\n\n`);
  });
  const tick = setInterval(() => {
    if (streams.size === 0) return;
    const data = `event: state\ndata: ${JSON.stringify(lab.state())}\n\n`;
    for (const s of streams) s.write(data);
  }, 1000);
  tick.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
      const addr = server.address();
      if (addr !== null && typeof addr === 'object' && addr.port !== opts.port) {
        auth = new LabAuth(opts.adminToken, opts.host, addr.port);
      }
      resolve();
    });
  });
  return {
    dashboardUrl: auth.loginUrl() ?? '',
    close: async () => {
      clearInterval(tick);
      offEvent();
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
