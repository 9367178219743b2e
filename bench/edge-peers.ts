/**
 * Processes the edge benchmarks start: nginx (as the static upstream and as the `proxy_pass` peer,
 * one worker each), a plain Node upstream when nginx is missing, and the edge itself through the
 * real `meridian edge` command, each in its own process so that no two share an event loop.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../src/adapters/region-table.js';

export interface Proc {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export function hasNginx(): boolean {
  return spawnSync('sh', ['-c', 'command -v nginx'], { stdio: 'ignore' }).status === 0;
}

/** A port that was free a moment ago (nginx cannot listen on port 0 and tell us). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts HTTP at `url` (bounded). */
export async function waitHttp(url: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    });
}

/** One nginx master with one worker, running `serverBlock` (the http{} body), in a fresh prefix. */
export async function startNginx(name: string, serverBlock: string, port: number): Promise<Proc> {
  const prefix = mkdtempSync(join(tmpdir(), `meridian-nginx-${name}-`));
  mkdirSync(join(prefix, 'logs'));
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf = `${user}worker_processes 1;
daemon off;
master_process on;
error_log stderr warn;
pid ${prefix}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy; fastcgi_temp_path ${prefix}/fcgi;
  uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
${serverBlock}
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHttp(`${url}/healthz`, 5000);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`nginx (${name}) did not start: ${err || (e as Error).message}`);
  }
  return { url, child, stop: stopper(child) };
}

export const UPSTREAM_BODY = '{"key":"k","value":{"n":1},"version":"eyJmIjoxLCJ2Ijp7fX0"}';

/** The upstream both proxies forward to: a static JSON answer from nginx. */
export function startStaticNginx(port: number): Promise<Proc> {
  return startNginx(
    'upstream',
    `  server {
    listen 127.0.0.1:${port};
    default_type application/json;
    location / { add_header Meridian-Region bench; return 200 '${UPSTREAM_BODY}'; }
  }`,
    port,
  );
}

/** nginx `proxy_pass` with an upstream keep-alive pool: the peer the edge is measured against. */
export function startProxyNginx(port: number, upstream: string): Promise<Proc> {
  return startNginx(
    'proxy',
    `  upstream meridian_region { server ${new URL(upstream).host}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://meridian_region;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
    port,
  );
}

/** Without nginx: the same static answer from a plain Node server in its own process. */
export async function startNodeUpstream(port: number): Promise<Proc> {
  const src = `require('node:http').createServer((q,s)=>{q.resume();q.on('end',()=>{s.writeHead(200,{'content-type':'application/json','meridian-region':'bench'});s.end(${JSON.stringify(UPSTREAM_BODY)});});}).listen(${port},'127.0.0.1');`;
  const child = spawn(process.execPath, ['-e', src], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`);
  return { url, child, stop: stopper(child) };
}

/**
 * The ceiling for any proxy on one Node event loop: a bare TCP relay (one upstream connection per
 * client connection, bytes copied both ways, no HTTP parsing, no routing) in its own process. What
 * it cannot beat on this machine, no Node HTTP proxy can.
 */
export async function startBareNodeRelay(port: number, upstream: string): Promise<Proc> {
  const up = new URL(upstream);
  const src = `const net=require('node:net');net.createServer({noDelay:true},(c)=>{const u=net.connect({host:${JSON.stringify(up.hostname)},port:${Number(up.port)},noDelay:true});c.on('data',(d)=>u.write(d));u.on('data',(d)=>c.write(d));const bye=()=>{c.destroy();u.destroy();};c.on('error',bye);u.on('error',bye);c.on('close',bye);u.on('close',bye);}).listen(${port},'127.0.0.1');`;
  const child = spawn(process.execPath, ['-e', src], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`);
  return { url, child, stop: stopper(child) };
}

/** `meridian edge --config FILE --edge ID` in its own process; resolves when it listens. */
export async function startEdgeProcess(configPath: string, edgeId: string, edgeUrl: string): Promise<Proc> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(projectRoot(), 'src/cli/main.ts'),
      'edge',
      '--config',
      configPath,
      '--edge',
      edgeId,
    ],
    {
      cwd: projectRoot(),
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_ENV: 'production' },
    },
  );
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  try {
    await waitHttp(`${edgeUrl}/healthz`);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`the edge did not start: ${err || (e as Error).message}`);
  }
  return { url: edgeUrl, child, stop: stopper(child) };
}
