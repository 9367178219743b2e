/**
 * A small HTTP/1.1 server for the edge's client side, on raw `net` sockets. The edge answers with
 * whole buffered bodies, so it needs little of node:http; measured on the bench machine, node:http
 * alone capped a proxy at about half of what the same proxy does on this parser (its per-request
 * IncomingMessage/ServerResponse streams cost more than the proxying). It supports keep-alive,
 * pipelined requests (answered in order), Content-Length and chunked request bodies, Expect:
 * 100-continue and HTTP/1.0, and refuses what it does not: ambiguous framing (both Content-Length
 * and Transfer-Encoding), oversized heads (431) and bodies (413).
 */
import { STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';

export interface Http1Request {
  method: string;
  /** The request target as sent (origin form: path and query). */
  url: string;
  /** Lower-case names; repeated headers joined with ", " (cookies with "; "). */
  headers: Record<string, string>;
  body: Buffer | undefined;
  remoteAddress: string;
}

export type ResponseHeaders = Record<string, string | string[] | number | undefined>;

export interface Http1Response {
  /** Writes the whole answer; Content-Length is set from the body (or kept as given for HEAD). */
  send(status: number, headers: ResponseHeaders, body?: Buffer | string): void;
  /**
   * `send` for a proxy that already has the header lines (`name: value\r\n` each, without
   * framing or hop-by-hop headers): no header object to build and walk again. For HEAD,
   * `headContentLength` is the length a GET would have had.
   */
  sendRaw(status: number, headerLines: string, body: Buffer, headContentLength?: number): void;
  readonly sent: boolean;
}

export interface Http1Options {
  maxHeadBytes: number;
  maxBodyBytes: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: number;
}

export class Http1Error extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const CRLF2 = Buffer.from('\r\n\r\n');
/** RFC 9110 5.5: field values are visible characters, spaces and tabs (obs-text allowed). */
function badValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

interface Parsed {
  req: Http1Request;
  keepAlive: boolean;
  /** Bytes of the buffer this request used. */
  used: number;
}

/** Decodes a complete chunked body starting at `from`; undefined while incomplete. */
function dechunk(buf: Buffer, from: number, maxBytes: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let size = 0;
  let at = from;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return undefined;
    const line = buf.toString('latin1', at, eol);
    const hex = line.split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) throw new Http1Error(400, 'malformed chunk size');
    const n = Number.parseInt(hex, 16);
    at = eol + 2;
    if (n === 0) {
      // Trailers, ignored, end with an empty line.
      if (buf.length < at + 2) return undefined;
      if (buf[at] === 13 && buf[at + 1] === 10) return { body: Buffer.concat(parts, size), end: at + 2 };
      const t = buf.indexOf(CRLF2, at);
      if (t < 0) return undefined;
      return { body: Buffer.concat(parts, size), end: t + 4 };
    }
    size += n;
    if (size > maxBytes) throw new Http1Error(413, `request body over ${maxBytes} bytes`);
    if (buf.length < at + n + 2) return undefined;
    parts.push(buf.subarray(at, at + n));
    at += n + 2;
  }
}

/** Parses one request from the front of `buf`; undefined while it is incomplete. */
function parse(
  buf: Buffer,
  o: Http1Options,
  remoteAddress: string,
  onContinue: () => void,
  state: { continued: boolean },
): Parsed | undefined {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd < 0) {
    if (buf.length > o.maxHeadBytes) throw new Http1Error(431, 'request head too large');
    return undefined;
  }
  if (headEnd > o.maxHeadBytes) throw new Http1Error(431, 'request head too large');
  // Tolerate stray empty lines between pipelined requests (RFC 9112 2.2).
  let start = 0;
  while (buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const lines = buf.toString('latin1', start, headEnd).split('\r\n');
  const first = lines[0]!.split(' ');
  if (first.length !== 3) throw new Http1Error(400, 'malformed request line');
  const [method, url, version] = first as [string, string, string];
  if (!TOKEN.test(method)) throw new Http1Error(400, 'malformed method');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0')
    throw new Http1Error(505, 'HTTP version not supported');
  let target = url;
  // No spaces (already split on), controls or DEL in the target: it is forwarded as is.
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c === 0x7f) throw new Http1Error(400, 'malformed request target');
  }
  if (!target.startsWith('/')) {
    if (/^https?:\/\//i.test(target)) {
      const u = new URL(target);
      target = u.pathname + u.search;
    } else throw new Http1Error(400, 'malformed request target');
  }
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Http1Error(400, 'malformed header line');
    const name = line.slice(0, colon).toLowerCase();
    if (!TOKEN.test(name)) throw new Http1Error(400, 'malformed header name');
    const value = line.slice(colon + 1).trim();
    // Control characters would be refused by the upstream client later, as if the region had failed.
    if (badValue(value)) throw new Http1Error(400, `invalid character in header ${name}`);
    const prior = headers[name];
    headers[name] = prior === undefined ? value : `${prior}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  const connection = headers.connection?.toLowerCase() ?? '';
  const keepAlive =
    version === 'HTTP/1.1' ? !connection.includes('close') : connection.includes('keep-alive');
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  const bodyStart = headEnd + 4;
  if (te !== undefined && cl !== undefined)
    throw new Http1Error(400, 'both Content-Length and Transfer-Encoding');
  // Refuse what will be refused anyway before inviting the client to send its body.
  if (te !== undefined && te.toLowerCase() !== 'chunked') {
    throw new Http1Error(501, `transfer-encoding ${te} not supported`);
  }
  if (cl !== undefined && !/^\d{1,15}$/.test(cl)) throw new Http1Error(400, 'malformed Content-Length');
  if (cl !== undefined && Number(cl) > o.maxBodyBytes) {
    throw new Http1Error(413, `request body over ${o.maxBodyBytes} bytes`);
  }
  if (
    !state.continued &&
    headers.expect?.toLowerCase() === '100-continue' &&
    version === 'HTTP/1.1' &&
    buf.length === bodyStart
  ) {
    state.continued = true;
    onContinue();
  }
  let body: Buffer | undefined;
  let used = bodyStart;
  if (te !== undefined) {
    if (te.toLowerCase() !== 'chunked') throw new Http1Error(501, `transfer-encoding ${te} not supported`);
    const d = dechunk(buf, bodyStart, o.maxBodyBytes);
    if (!d) return undefined;
    body = d.body;
    used = d.end;
  } else if (cl !== undefined) {
    if (!/^\d{1,15}$/.test(cl)) throw new Http1Error(400, 'malformed Content-Length');
    const n = Number(cl);
    if (n > o.maxBodyBytes) throw new Http1Error(413, `request body over ${o.maxBodyBytes} bytes`);
    if (buf.length < bodyStart + n) return undefined;
    if (n > 0) body = buf.subarray(bodyStart, bodyStart + n);
    used = bodyStart + n;
  }
  return { req: { method, url: target, headers, body, remoteAddress }, keepAlive, used };
}

/** Hop-by-hop (RFC 9110 7.6.1) and framing headers: never forwarded; each side's writer sets its own. */
export const HOP_BY_HOP = new Set([
  'content-length',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'proxy-authenticate',
]);

function headerLines(headers: ResponseHeaders): string {
  let out = '';
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    if (Array.isArray(v)) for (const x of v) out += `${k}: ${x}\r\n`;
    else out += `${k}: ${v}\r\n`;
  }
  return out;
}

const STATUS_LINES = new Map<number, string>();
function statusLine(status: number): string {
  let line = STATUS_LINES.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    if (status >= 100 && status < 600) STATUS_LINES.set(status, line);
  }
  return line;
}

function frame(status: number, lines: string, length: number | undefined, close: boolean): string {
  return `${statusLine(status)}${lines}${length === undefined ? '' : `content-length: ${length}\r\n`}${close ? 'connection: close\r\n' : ''}\r\n`;
}

function head(status: number, headers: ResponseHeaders, length: number | undefined, close: boolean): string {
  return frame(status, headerLines(headers), length, close);
}

/** What an answer needs of its connection. */
interface ReplyTarget {
  readonly socket: Socket;
  isClosing(): boolean;
  /** The answer is written; `close`: the connection ends now. */
  replied(close: boolean): void;
}

/** One request's answer: a class rather than an object of closures, one fewer allocation per request. */
class Reply implements Http1Response {
  sent = false;

  constructor(
    private readonly c: ReplyTarget,
    private readonly keepAlive: boolean,
    private readonly isHead: boolean,
  ) {}

  send(status: number, headers: ResponseHeaders, body?: Buffer | string): void {
    if (this.sent || this.c.socket.destroyed) return;
    const bytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const cl = headers['content-length'];
    const length = this.isHead ? (cl === undefined ? undefined : Number(cl)) : (bytes?.length ?? 0);
    this.write(status, headerLines(headers), bytes, length);
  }

  sendRaw(status: number, lines: string, body: Buffer, headContentLength?: number): void {
    if (this.sent || this.c.socket.destroyed) return;
    this.write(status, lines, body, this.isHead ? headContentLength : body.length);
  }

  private write(status: number, lines: string, bytes: Buffer | undefined, length: number | undefined): void {
    this.sent = true;
    const c = this.c;
    const close = !this.keepAlive || c.isClosing();
    const h = frame(status, lines, length, close);
    if (!this.isHead && bytes && bytes.length > 0) {
      // One buffer, one write: a corked pair goes through writev and the stream's buffering,
      // which measured a few µs per answer more.
      const out = Buffer.allocUnsafe(h.length + bytes.length);
      out.write(h, 0, 'latin1');
      bytes.copy(out, h.length);
      c.socket.write(out);
    } else c.socket.write(h, 'latin1');
    c.replied(close);
  }
}

/**
 * @example
 * const server = createHttp1Server(opts, (req, res) => res.send(200, { 'content-type': 'text/plain' }, 'ok'));
 * server.listen(8080, '127.0.0.1');
 */
export function createHttp1Server(
  options: Http1Options,
  handler: (req: Http1Request, res: Http1Response) => void,
  onError: (req: Http1Request | undefined, e: Http1Error) => ResponseHeaders = () => ({}),
): Server & { closeAllConnections(): void } {
  // Idle connections are swept on a coarse tick rather than with socket.setTimeout, which re-arms
  // a timer on every read and write.
  const sockets = new Map<Socket, number>();
  let tick = 0;
  const sweepMs = Math.max(100, Math.floor(options.keepAliveTimeoutMs / 2));
  const sweeper = setInterval(() => {
    tick++;
    for (const [s, seen] of sockets) if (tick - seen > 2) s.destroy();
  }, sweepMs);
  sweeper.unref();
  // allowHalfOpen: a client may send its request and then shut its side (printf | nc); it still
  // gets its answers, and the connection ends once nothing is left to answer.
  const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    sockets.set(socket, tick);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
    const remoteAddress = socket.remoteAddress ?? '';
    let buf: Buffer = Buffer.alloc(0);
    let busy = false;
    let closing = false;
    let peerEnded = false;
    const endIfDone = (): void => {
      if (peerEnded && !busy && !closing) {
        closing = true;
        socket.end();
      }
    };
    const state = { continued: false };
    const writeRaw = (s: string): void => {
      socket.write(s, 'latin1');
    };

    const fail = (e: Http1Error): void => {
      closing = true;
      const text = JSON.stringify({
        error: { code: e.status === 413 ? 'too_large' : 'bad_request', message: e.message },
      });
      const h = { 'content-type': 'application/json; charset=utf-8', ...onError(undefined, e) };
      socket.end(head(e.status, h, Buffer.byteLength(text), true) + text, 'latin1');
      buf = Buffer.alloc(0);
    };

    const sendContinue = (): void => writeRaw('HTTP/1.1 100 Continue\r\n\r\n');
    const target: ReplyTarget = {
      socket,
      isClosing: () => closing,
      replied(close) {
        if (close) {
          closing = true;
          socket.end();
          return;
        }
        busy = false;
        if (buf.length > 0) setImmediate(pump);
        else endIfDone();
      },
    };

    const pump = (): void => {
      while (!busy && !closing && buf.length > 0) {
        let parsed: Parsed | undefined;
        try {
          parsed = parse(buf, options, remoteAddress, sendContinue, state);
        } catch (e) {
          fail(e instanceof Http1Error ? e : new Http1Error(400, (e as Error).message));
          return;
        }
        if (!parsed) {
          endIfDone();
          return;
        }
        // Keep the body's bytes: it is a view of `buf`, which moves on.
        if (parsed.req.body && parsed.req.body.buffer === buf.buffer)
          parsed.req.body = Buffer.from(parsed.req.body);
        buf = parsed.used === buf.length ? Buffer.alloc(0) : buf.subarray(parsed.used);
        state.continued = false;
        busy = true;
        const res = new Reply(target, parsed.keepAlive, parsed.req.method === 'HEAD');
        try {
          handler(parsed.req, res);
        } catch (e) {
          res.send(
            500,
            { 'content-type': 'application/json' },
            JSON.stringify({ error: { code: 'internal', message: (e as Error).message } }),
          );
        }
      }
    };

    socket.on('end', () => {
      peerEnded = true;
      if (buf.length === 0) endIfDone();
      else pump();
    });
    socket.on('data', (chunk: Buffer) => {
      sockets.set(socket, tick);
      if (closing) return;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      pump();
    });
  });
  return Object.assign(server, {
    closeAllConnections() {
      clearInterval(sweeper);
      for (const s of sockets.keys()) s.destroy();
    },
  });
}
