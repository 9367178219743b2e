/** One timed HTTP call for experiments: never throws, a connection failure is status 0. */
import { Agent, request } from 'undici';

export interface CallResult {
  status: number;
  served: string | undefined;
  token: string | undefined;
  setCookie: string[];
  body: string;
  startMs: number;
  endMs: number;
}

export const experimentAgent = new Agent({
  keepAliveTimeout: 4000,
  connections: 32,
  connect: { timeout: 2000 },
});

export async function call(
  url: string,
  init: {
    method?: 'GET' | 'PUT' | 'POST' | 'DELETE';
    body?: unknown;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<CallResult> {
  const startMs = Date.now();
  try {
    const res = await request(url, {
      method: init.method ?? 'GET',
      headers: { 'content-type': 'application/json', ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      dispatcher: experimentAgent,
      headersTimeout: init.timeoutMs ?? 5000,
      bodyTimeout: init.timeoutMs ?? 5000,
    });
    const body = await res.body.text();
    const h = res.headers;
    const sc = h['set-cookie'];
    return {
      status: res.statusCode,
      served: typeof h['meridian-region'] === 'string' ? h['meridian-region'] : undefined,
      token: typeof h['meridian-version'] === 'string' ? h['meridian-version'] : undefined,
      setCookie: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc],
      body,
      startMs,
      endMs: Date.now(),
    };
  } catch {
    return {
      status: 0,
      served: undefined,
      token: undefined,
      setCookie: [],
      body: '',
      startMs,
      endMs: Date.now(),
    };
  }
}

/** Cookie header value from Set-Cookie lines. */
export function cookieHeader(setCookie: readonly string[]): string {
  return setCookie
    .map((l) => (l.split(';')[0] ?? '').trim())
    .filter((s) => s.includes('='))
    .join('; ');
}

export function progress(label: string, doneFraction: number, extra = ''): void {
  const width = 24;
  const n = Math.round(Math.min(1, Math.max(0, doneFraction)) * width);
  const line = `\r  ${label} [${'#'.repeat(n)}${'.'.repeat(width - n)}] ${Math.round(doneFraction * 100)}% ${extra}`;
  if (process.stdout.isTTY) process.stdout.write(line);
  else if (n === width || n % 6 === 0) process.stdout.write(`${line.trim()}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
