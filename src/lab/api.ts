/**
 * The lab's HTTP server on 127.0.0.1:8080: the dashboard (web/, with its libraries served from
 * node_modules, since the lab runs offline), a live state stream (Server-Sent Events), and the
 * chaos and traffic mutations, which need the admin token. The page gets the token injected only
 * when asked for by its loopback name, so another site in the browser cannot read it (DNS rebinding).
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { projectRoot } from '../adapters/region-table.js';
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

function tokenOk(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  const given = Buffer.from(h.startsWith('Bearer ') ? h.slice(7).trim() : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: { code, message } });
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

/**
 * Starts the lab API; resolves to a function that closes it.
 * @example const close = await startLabApi(lab, { host: '127.0.0.1', port: 8080, adminToken });
 */
export async function startLabApi(
  lab: Lab,
  opts: { host: string; port: number; adminToken: string },
): Promise<() => Promise<void>> {
  const root = projectRoot();
  const webDir = join(root, 'web');
  const streams = new Set<ServerResponse>();
  const loopbackHosts = new Set([`${opts.host}:${opts.port}`, `localhost:${opts.port}`]);

  const serveFile = (res: ServerResponse, file: string, transform?: (s: string) => string): void => {
    try {
      const raw = readFileSync(file);
      const body = transform ? transform(raw.toString('utf8')) : raw;
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
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
          const inject = loopbackHosts.has(req.headers.host ?? '');
          serveFile(res, join(webDir, 'index.html'), (s) =>
            s.replace(
              '<!--LAB-CONFIG-->',
              `<script>window.MERIDIAN_ADMIN_TOKEN=${JSON.stringify(inject ? opts.adminToken : '')};</script>`,
            ),
          );
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
          if (!tokenOk(req, opts.adminToken)) {
            return fail(
              res,
              401,
              'unauthorized',
              'send Authorization: Bearer <token from .meridian/admin-token>',
            );
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
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => resolve());
  });
  return async () => {
    clearInterval(tick);
    offEvent();
    for (const s of streams) s.end();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
