/**
 * A small HTTP/1.1 server for the edge's client side, on raw `net` sockets. The edge answers with
 * whole buffered bodies, so it needs little of node:http; measured on the bench machine, node:http
 * alone capped a proxy at about half of what the same proxy does on this parser (its per-request
 * IncomingMessage/ServerResponse streams cost more than the proxying). It supports keep-alive,
 * pipelined requests (answered in order), Content-Length and chunked request bodies, Expect:
 * 100-continue and HTTP/1.0. The parser (http1-parser.ts) refuses what it does not support and
 * bounds every input dimension; this file adds the deadlines (request head, body, idle) and the
 * connection limits (per client address and in all).
 */
import { STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { Http1Error, type ParsedHead, type ParserLimits, RequestParser } from './http1-parser.js';

export { Http1Error } from './http1-parser.js';

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

export interface Http1Options extends ParserLimits {
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: number;
  /**
   * A request head must be complete this long after its first byte (408 and close). Not reset by
   * each byte: a client trickling a byte at a time gets no longer than one that sends nothing.
   * A new connection that sends nothing at all is closed after this long too.
   */
  headTimeoutMs: number;
  /** A request body must be complete this long after its head (408 and close). */
  bodyTimeoutMs: number;
  /** Connections open at once from one client address; more are closed at once. */
  maxConnectionsPerClient: number;
  /** Client connections open at once; more are closed at once. */
  maxConnections: number;
}

/** A limit a client ran into, for the edge's metrics. */
export type Http1Refusal =
  | 'connections_per_client'
  | 'connections'
  | 'head_timeout'
  | 'body_timeout'
  | 'bad_request';

export const HTTP1_DEFAULTS: Http1Options = {
  maxHeadBytes: 16 * 1024,
  maxHeaderLineBytes: 8 * 1024,
  maxHeaderCount: 100,
  maxChunkLineBytes: 4096,
  maxBodyBytes: 1024 * 1024,
  keepAliveTimeoutMs: 65_000,
  headTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxConnectionsPerClient: 256,
  maxConnections: 10_000,
};

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

const EMPTY = Buffer.alloc(0);
/** Unanswered pipelined bytes held while a request is being answered; beyond, reading pauses. */
const PENDING_PAUSE_BYTES = 64 * 1024;
/** A refused or finished connection gets this long to read its answer before it is destroyed. */
const LINGER_MS = 2000;

enum Deadline {
  None = 0,
  /** Waiting for a first request, or between requests: closed without an answer. */
  Idle = 1,
  Head = 2,
  Body = 3,
  /** Answered and closing: destroyed if the client does not close first. */
  Linger = 4,
}

type Handler = (req: Http1Request, res: Http1Response) => void;
type OnError = (req: Http1Request | undefined, e: Http1Error) => ResponseHeaders;

/** One client connection: feeds the parser, answers requests in order, keeps its deadline. */
class Connection implements ReplyTarget {
  private readonly parser: RequestParser;
  private pending: Buffer = EMPTY;
  private busy = false;
  private closing = false;
  private peerEnded = false;
  private paused = false;
  deadline: Deadline;
  deadlineAt: number;

  constructor(
    readonly socket: Socket,
    private readonly o: Http1Options,
    private readonly handler: Handler,
    private readonly onError: OnError,
    private readonly onRefuse: (why: Http1Refusal) => void,
  ) {
    this.parser = new RequestParser(o, (head, more) => this.onHead(head, more));
    this.deadline = Deadline.Idle;
    this.deadlineAt = performance.now() + o.headTimeoutMs;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.peerEnded = true;
      if (this.pending.length === 0) this.endIfDone();
      else this.pump();
    });
  }

  isClosing(): boolean {
    return this.closing;
  }

  replied(close: boolean): void {
    if (close) {
      this.close();
      return;
    }
    this.busy = false;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    // A client that pipelines without reading its answers waits until it reads them.
    if (this.socket.writableNeedDrain) this.socket.once('drain', () => this.pump());
    else if (this.pending.length > 0) setImmediate(() => this.pump());
    else {
      this.idle();
      this.endIfDone();
    }
  }

  /** Called by the server's sweep: the deadline has passed. */
  expire(): void {
    switch (this.deadline) {
      case Deadline.Head:
        this.onRefuse('head_timeout');
        this.fail(new Http1Error(408, `request head not complete within ${this.o.headTimeoutMs} ms`));
        return;
      case Deadline.Body:
        this.onRefuse('body_timeout');
        this.fail(new Http1Error(408, `request body not complete within ${this.o.bodyTimeoutMs} ms`));
        return;
      case Deadline.None:
        return;
      default:
        this.socket.destroy();
    }
  }

  private setDeadline(kind: Deadline, ms: number): void {
    this.deadline = kind;
    this.deadlineAt = kind === Deadline.None ? 0 : performance.now() + ms;
  }

  private idle(): void {
    this.setDeadline(Deadline.Idle, this.o.keepAliveTimeoutMs);
  }

  private onHead(head: ParsedHead, more: boolean): void {
    if (!head.hasBody) return;
    this.setDeadline(Deadline.Body, this.o.bodyTimeoutMs);
    if (head.expectContinue && !more) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.busy) {
      if (this.pending.length > PENDING_PAUSE_BYTES && !this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    this.pump();
  }

  private pump(): void {
    const parser = this.parser;
    while (!this.busy && !this.closing && this.pending.length > 0 && !this.socket.writableNeedDrain) {
      // The head deadline runs from the request's first byte and is not moved by later ones.
      if (!parser.started) this.setDeadline(Deadline.Head, this.o.headTimeoutMs);
      let request: ReturnType<RequestParser['take']>;
      try {
        const pending = this.pending;
        const at = parser.feed(pending, 0);
        this.pending = at === pending.length ? EMPTY : pending.subarray(at);
        request = parser.take();
      } catch (e) {
        const err = e instanceof Http1Error ? e : new Http1Error(400, (e as Error).message);
        this.onRefuse('bad_request');
        this.fail(err);
        return;
      }
      if (!request) break;
      this.busy = true;
      this.setDeadline(Deadline.None, 0);
      const head = request.head;
      const req: Http1Request = {
        method: head.method,
        url: head.url,
        headers: head.headers,
        body: request.body,
        remoteAddress: this.socket.remoteAddress ?? '',
      };
      const res = new Reply(this, head.keepAlive, head.method === 'HEAD');
      try {
        this.handler(req, res);
      } catch (e) {
        res.send(
          500,
          { 'content-type': 'application/json' },
          JSON.stringify({ error: { code: 'internal', message: (e as Error).message } }),
        );
      }
    }
    this.endIfDone();
  }

  private endIfDone(): void {
    if (this.peerEnded && !this.busy && !this.closing) this.close();
  }

  private close(): void {
    this.closing = true;
    this.pending = EMPTY;
    this.setDeadline(Deadline.Linger, LINGER_MS);
    this.socket.end();
  }

  /** Answers a refused request in the contract's error shape, then closes: nothing after it is read. */
  private fail(e: Http1Error): void {
    const text = JSON.stringify({ error: { code: e.code, message: e.message } });
    const h = { 'content-type': 'application/json; charset=utf-8', ...this.onError(undefined, e) };
    this.closing = true;
    this.pending = EMPTY;
    this.setDeadline(Deadline.Linger, LINGER_MS);
    // Stop reading: a client still sending (a 64 MB chunk extension) is not read any further.
    this.socket.pause();
    this.socket.end(head(e.status, h, Buffer.byteLength(text), true) + text, 'latin1');
  }
}

/**
 * @example
 * const server = createHttp1Server({ headTimeoutMs: 5000 }, (req, res) => res.send(200, { 'content-type': 'text/plain' }, 'ok'));
 * server.listen(8080, '127.0.0.1');
 */
export function createHttp1Server(
  options: Partial<Http1Options>,
  handler: Handler,
  onError: OnError = () => ({}),
  onRefuse: (why: Http1Refusal) => void = () => undefined,
): Server & { closeAllConnections(): void } {
  const o = { ...HTTP1_DEFAULTS, ...options } satisfies Http1Options;
  const connections = new Map<Socket, Connection>();
  const perClient = new Map<string, number>();
  // Deadlines are checked on a coarse tick rather than with socket.setTimeout, which re-arms a
  // timer on every read and write (and would let a byte a second keep a head open forever).
  const tickMs = Math.min(
    1000,
    Math.max(10, Math.floor(Math.min(o.headTimeoutMs, o.bodyTimeoutMs, o.keepAliveTimeoutMs) / 4)),
  );
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const c of connections.values()) if (c.deadline !== 0 && now > c.deadlineAt) c.expire();
  }, tickMs);
  sweeper.unref();
  // allowHalfOpen: a client may send its request and then shut its side (printf | nc); it still
  // gets its answers, and the connection ends once nothing is left to answer.
  const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    const ip = socket.remoteAddress ?? '';
    const open = perClient.get(ip) ?? 0;
    if (open >= o.maxConnectionsPerClient) {
      onRefuse('connections_per_client');
      socket.destroy();
      return;
    }
    perClient.set(ip, open + 1);
    connections.set(socket, new Connection(socket, o, handler, onError, onRefuse));
    socket.on('close', () => {
      connections.delete(socket);
      const n = (perClient.get(ip) ?? 1) - 1;
      if (n <= 0) perClient.delete(ip);
      else perClient.set(ip, n);
    });
  });
  server.maxConnections = o.maxConnections;
  server.on('drop', () => onRefuse('connections'));
  return Object.assign(server, {
    closeAllConnections() {
      clearInterval(sweeper);
      for (const s of connections.keys()) s.destroy();
    },
  });
}
