/** Raw HTTP/1.1 over a socket, for tests that send what an HTTP client library would not. */
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The whole answer as received (empty when the server closed without one). */
  raw: string;
}

/**
 * Sends `bytes` on a new connection and reads until the server closes it (send `Connection: close`)
 * or `idleMs` pass without a byte, or `maxMs` in all (an endless answer, such as a replication
 * stream, is cut there); chunks of `bytes` given as an array are sent `gapMs` apart.
 */
export function rawRequest(
  url: string,
  bytes: string | Buffer | (string | Buffer)[],
  o: { idleMs?: number; gapMs?: number; maxMs?: number } = {},
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const idleMs = o.idleMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname);
    const parts: Buffer[] = [];
    let timer = setTimeout(() => s.destroy(), idleMs);
    const cut = setTimeout(() => s.destroy(), o.maxMs ?? 20_000);
    s.on('data', (d: Buffer) => {
      parts.push(d);
      clearTimeout(timer);
      timer = setTimeout(() => s.destroy(), idleMs);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      // A reset after the answer (the server closing a refused request) still has the answer.
      if (parts.length === 0 && e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      clearTimeout(cut);
      const raw = Buffer.concat(parts).toString('latin1');
      const [head = '', ...rest] = raw.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), raw });
    });
    s.on('connect', async () => {
      const chunks = Array.isArray(bytes) ? bytes : [bytes];
      for (const [i, c] of chunks.entries()) {
        if (i > 0 && o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        if (s.destroyed) return;
        s.write(c);
      }
    });
  });
}

/** A request head with `Host` and `Connection: close`, plus `body` with its Content-Length. */
export function head(
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): string {
  const h: Record<string, string> = { host: 'node.test', connection: 'close', ...headers };
  if (body !== undefined) {
    h['content-type'] ??= 'application/json';
    h['content-length'] = String(Buffer.byteLength(body));
  }
  const lines = Object.entries(h).map(([k, v]) => `${k}: ${v}`);
  return `${method} ${target} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body ?? ''}`;
}

/** The `error.code` of a contract-shaped JSON body, else undefined. */
export function contractCode(body: string): string | undefined {
  try {
    const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    return typeof j.error?.code === 'string' && typeof j.error.message === 'string'
      ? j.error.code
      : undefined;
  } catch {
    return undefined;
  }
}
