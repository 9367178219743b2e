/**
 * The request parser of the edge's HTTP/1.1 server (http1.ts): a state machine fed packet by
 * packet. Each byte is looked at once whatever the packets' sizes, so a huge chunk extension sent
 * in small packets costs one pass up to its limit and then a 400; every dimension a client
 * controls (head, header lines and count, chunk-size lines, trailers, body) is bounded as it
 * arrives, before it is buffered. What it accepts is never more than llhttp (node's own parser)
 * accepts: test/http-differential.ts checks that.
 */
import { METHODS } from 'node:http';

export interface ParserLimits {
  /** The whole head: request line, header lines and line endings (431). */
  maxHeadBytes: number;
  /** One header line (431) or the request line (414). */
  maxHeaderLineBytes: number;
  /** Header lines in one head (431). */
  maxHeaderCount: number;
  /** A chunk-size line with its extensions, and the trailer section (400). */
  maxChunkLineBytes: number;
  /** The decoded body (413). */
  maxBodyBytes: number;
}

/** A request the edge refuses: `status` and `code` are what the client gets, then the connection closes. */
export class Http1Error extends Error {
  readonly code: string;

  constructor(
    readonly status: number,
    message: string,
    code?: string,
  ) {
    super(message);
    this.code = code ?? defaultCode(status);
  }
}

function defaultCode(status: number): string {
  switch (status) {
    case 408:
      return 'request_timeout';
    case 413:
      return 'too_large';
    case 414:
      return 'uri_too_long';
    case 431:
      return 'headers_too_large';
    case 417:
      return 'expectation_failed';
    case 501:
      return 'not_implemented';
    case 505:
      return 'http_version_not_supported';
    default:
      return 'bad_request';
  }
}

export interface ParsedHead {
  method: string;
  /** The request target in origin form (path and query). */
  url: string;
  /** Lower-case names; repeated headers joined with ", " (cookies with "; "). */
  headers: Record<string, string>;
  keepAlive: boolean;
  /** The client waits for `100 Continue` before sending its body. */
  expectContinue: boolean;
  /** A body follows (Content-Length above 0, or chunked). */
  hasBody: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** llhttp's methods: one it does not know is not a request it would parse. */
const KNOWN_METHODS = new Set(METHODS);
const CR = 13;
const LF = 10;

/** RFC 9110 5.5: field values are visible characters, spaces and tabs (obs-text allowed). */
function badValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** Trims optional whitespace (RFC 9110 5.6.3: spaces and tabs only, not \v or \f). */
function trimOws(v: string): string {
  let s = 0;
  let e = v.length;
  while (s < e && (v.charCodeAt(s) === 0x20 || v.charCodeAt(s) === 0x09)) s++;
  while (e > s && (v.charCodeAt(e - 1) === 0x20 || v.charCodeAt(e - 1) === 0x09)) e--;
  return v.slice(s, e);
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/** Parses a complete head (without its final empty line): what the request is and how its body is framed. */
export function parseHead(
  text: string,
  limits: ParserLimits,
): ParsedHead & { framing: 'none' | 'length' | 'chunked'; length: number } {
  const lines = text.split('\r\n');
  const first = lines[0]!.split(' ');
  if (first.length !== 3) throw new Http1Error(400, 'malformed request line');
  const [method, url, version] = first as [string, string, string];
  if (!TOKEN.test(method)) throw new Http1Error(400, 'malformed method');
  if (!KNOWN_METHODS.has(method)) throw new Http1Error(501, `method ${method} is not implemented`);
  // A tunnel, not a request to proxy: llhttp hands CONNECT over as an upgrade, and the edge offers none.
  if (method === 'CONNECT') throw new Http1Error(501, 'CONNECT (tunnelling) is not supported');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0')
    throw new Http1Error(505, 'HTTP version not supported');
  let target = url;
  // No spaces (already split on), controls, DEL or bytes beyond ASCII: the target is forwarded as is.
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c >= 0x7f) throw new Http1Error(400, 'malformed request target');
  }
  if (!target.startsWith('/')) {
    if (!/^https?:\/\/[^/?#]+(?:[/?][^#]*)?$/i.test(target))
      throw new Http1Error(400, 'malformed request target');
    const u = new URL(target);
    target = u.pathname + u.search;
  }
  const headers: Record<string, string> = {};
  let hosts = 0;
  let lengths = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Http1Error(400, 'malformed header line');
    // A space before the colon or a folded line (obs-fold) fails the token test.
    const name = line.slice(0, colon).toLowerCase();
    if (!TOKEN.test(name)) throw new Http1Error(400, 'malformed header name');
    const value = trimOws(line.slice(colon + 1));
    // Control characters would be refused by the upstream client later, as if the region had failed.
    if (badValue(value)) throw new Http1Error(400, `invalid character in header ${name}`);
    if (name === 'host') hosts++;
    else if (name === 'content-length') lengths++;
    const prior = headers[name];
    headers[name] = prior === undefined ? value : `${prior}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  // RFC 9112 3.2: exactly one Host in an HTTP/1.1 request; two would let two hops disagree.
  if (version === 'HTTP/1.1' && hosts !== 1)
    throw new Http1Error(400, hosts === 0 ? 'missing Host header' : 'more than one Host header');
  if (version === 'HTTP/1.0' && hosts > 1) throw new Http1Error(400, 'more than one Host header');
  const connection = headers.connection?.toLowerCase() ?? '';
  const keepAlive =
    version === 'HTTP/1.1' ? !connection.includes('close') : connection.includes('keep-alive');
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined && cl !== undefined)
    throw new Http1Error(400, 'both Content-Length and Transfer-Encoding');
  // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
  if (te !== undefined && version === 'HTTP/1.0')
    throw new Http1Error(400, 'Transfer-Encoding in an HTTP/1.0 request');
  if (te !== undefined && te.toLowerCase() !== 'chunked')
    throw new Http1Error(501, `transfer-encoding ${te} not supported`);
  if (cl !== undefined && (lengths > 1 || !/^\d{1,15}$/.test(cl)))
    throw new Http1Error(400, 'malformed Content-Length');
  const length = cl === undefined ? 0 : Number(cl);
  if (length > limits.maxBodyBytes)
    throw new Http1Error(413, `request body over ${limits.maxBodyBytes} bytes`);
  const expect = headers.expect;
  let expectContinue = false;
  if (expect !== undefined) {
    // RFC 9110 10.1.1: an expectation the server cannot meet is a 417, not silence.
    if (expect.toLowerCase() !== '100-continue')
      throw new Http1Error(417, `expectation ${expect} is not supported`);
    expectContinue = version === 'HTTP/1.1';
  }
  const framing = te !== undefined ? 'chunked' : length > 0 ? 'length' : 'none';
  return {
    method,
    url: target,
    headers,
    keepAlive,
    expectContinue,
    hasBody: framing !== 'none',
    framing,
    length,
  };
}

enum Phase {
  Head = 0,
  Length = 1,
  ChunkSize = 2,
  ChunkExt = 3,
  ChunkSizeLf = 4,
  ChunkData = 5,
  ChunkDataCr = 6,
  ChunkDataLf = 7,
  Trailer = 8,
  TrailerLf = 9,
}

/** Where in a chunk extension the parser is. */
enum Ext {
  Name = 0,
  ValueStart = 1,
  Token = 2,
  Quoted = 3,
  Escape = 4,
  /** After a quoted value's closing quote. */
  Done = 5,
}

const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TCHAR[c.charCodeAt(0)] = 1;
function isTchar(b: number): boolean {
  return TCHAR[b] === 1;
}

/**
 * One connection's parser: `feed` consumes bytes up to the end of the current request; a complete
 * request is then in `take()`. Throws Http1Error on anything it refuses.
 * @example
 * const p = new RequestParser(limits, (head, more) => { if (head.expectContinue && !more) sendContinue(); });
 * let at = 0;
 * while (at < chunk.length) { at = p.feed(chunk, at); const r = p.take(); if (r) handle(r); }
 */
export class RequestParser {
  private phase = Phase.Head;
  /** Bytes of the current request seen so far, empty lines before it included. */
  private seen = 0;
  private headParts: Buffer[] = [];
  private headBytes = 0;
  private lineBytes = 0;
  private headerLines = 0;
  private sawCr = false;
  private head: ParsedHead | undefined;
  private bodyParts: Buffer[] = [];
  private bodyBytes = 0;
  private remaining = 0;
  private chunkSize = 0;
  private chunkDigits = 0;
  private trailerBytes = 0;
  private trailerLine = '';
  private ext = Ext.Name;
  private extNameBytes = 0;
  private done: { head: ParsedHead; body: Buffer | undefined } | undefined;

  constructor(
    private readonly limits: ParserLimits,
    /** The head is complete; `more`: bytes after it are already at hand. */
    private readonly onHead: (head: ParsedHead, more: boolean) => void = () => undefined,
  ) {}

  /** Whether any byte of a request has arrived (for the head deadline). */
  get started(): boolean {
    return this.seen > 0;
  }

  /** Whether the head is complete and the body is still arriving. */
  get inBody(): boolean {
    return this.phase !== Phase.Head;
  }

  /** The request completed by the last `feed`, once. */
  take(): { head: ParsedHead; body: Buffer | undefined } | undefined {
    const d = this.done;
    this.done = undefined;
    return d;
  }

  /** Consumes `buf` from `from` up to the end of one request; returns the offset it stopped at. */
  feed(buf: Buffer, from: number): number {
    let i = from;
    const end = buf.length;
    while (i < end && this.done === undefined) {
      switch (this.phase) {
        case Phase.Head:
          i = this.scanHead(buf, i);
          break;
        case Phase.Length:
          i = this.takeBody(buf, i, end);
          if (this.remaining === 0) this.finish();
          break;
        case Phase.ChunkData:
          i = this.takeBody(buf, i, end);
          if (this.remaining === 0) this.phase = Phase.ChunkDataCr;
          break;
        default:
          this.chunkByte(buf[i]!);
          i++;
      }
    }
    // A finished request resets `seen`: the bytes after it belong to the next one.
    if (this.done === undefined) this.seen += i - from;
    return i;
  }

  /** Takes up to `remaining` body bytes (of a Content-Length body or of one chunk) from `i`. */
  private takeBody(buf: Buffer, i: number, end: number): number {
    const n = Math.min(this.remaining, end - i);
    this.bodyParts.push(buf.subarray(i, i + n));
    this.bodyBytes += n;
    this.remaining -= n;
    return i + n;
  }

  /**
   * Scans head bytes from `from`: runs of line bytes are found with native searches for CR and
   * LF, and the limits are checked per run, so a head costs about one pass of memchr over it.
   */
  private scanHead(buf: Buffer, from: number): number {
    const limits = this.limits;
    const start = from;
    const end = buf.length;
    let i = from;
    while (i < end) {
      if (this.sawCr) {
        if (++this.headBytes > limits.maxHeadBytes) throw new Http1Error(431, 'request head too large');
        if (buf[i] !== LF) throw new Http1Error(400, 'CR not followed by LF in the request head');
        this.sawCr = false;
        i++;
        if (this.lineBytes === 0) {
          // An empty line before the request line (RFC 9112 2.2) is skipped (completeHead drops it).
          if (this.headerLines === 0) continue;
          this.headParts.push(buf.subarray(start, i));
          this.completeHead(buf, i);
          return i;
        }
        this.headerLines++;
        if (this.headerLines - 1 > limits.maxHeaderCount)
          throw new Http1Error(431, `more than ${limits.maxHeaderCount} header lines`);
        this.lineBytes = 0;
        continue;
      }
      const cr = buf.indexOf(CR, i);
      const stop = cr < 0 ? end : cr;
      // RFC 9112 2.2 lets a server refuse a bare LF; answering beats waiting for a CRLF that never comes.
      const lf = buf.indexOf(LF, i);
      if (lf >= 0 && lf < stop) throw new Http1Error(400, 'bare LF in the request head; lines end with CRLF');
      const n = stop - i;
      this.headBytes += n;
      this.lineBytes += n;
      if (this.lineBytes > limits.maxHeaderLineBytes) {
        if (this.headerLines === 0) throw new Http1Error(414, 'request line too long');
        throw new Http1Error(431, 'header line too long');
      }
      if (this.headBytes > limits.maxHeadBytes) throw new Http1Error(431, 'request head too large');
      if (cr < 0) {
        i = end;
        break;
      }
      if (++this.headBytes > limits.maxHeadBytes) throw new Http1Error(431, 'request head too large');
      this.sawCr = true;
      i = cr + 1;
    }
    if (i > start) this.headParts.push(buf.subarray(start, i));
    return i;
  }

  private completeHead(buf: Buffer, next: number): void {
    const parts = this.headParts;
    const text = parts.length === 1 ? parts[0]!.toString('latin1') : Buffer.concat(parts).toString('latin1');
    // The scan let CR and LF through only as line endings: the empty lines before the request
    // line and the head's own end are all there is to drop at either end.
    let s = 0;
    let e = text.length;
    while (s < e && (text.charCodeAt(s) === CR || text.charCodeAt(s) === LF)) s++;
    while (e > s && (text.charCodeAt(e - 1) === CR || text.charCodeAt(e - 1) === LF)) e--;
    const head = parseHead(text.slice(s, e), this.limits);
    this.head = head;
    this.headParts = [];
    if (head.framing === 'length') {
      this.phase = Phase.Length;
      this.remaining = head.length;
    } else if (head.framing === 'chunked') {
      this.phase = Phase.ChunkSize;
      this.resetChunkLine();
    }
    this.onHead(head, next < buf.length);
    if (head.framing === 'none') this.finish();
  }

  private resetChunkLine(): void {
    this.lineBytes = 0;
    this.chunkSize = 0;
    this.chunkDigits = 0;
  }

  /** One byte of chunked framing outside chunk data: size lines, CRLFs and trailers. */
  private chunkByte(b: number): void {
    const limits = this.limits;
    switch (this.phase) {
      case Phase.ChunkSize:
      case Phase.ChunkExt: {
        if (b === CR) {
          if (this.chunkDigits === 0) throw new Http1Error(400, 'malformed chunk size');
          // A line may end after a name, a token value or a closing quote, not inside one.
          if (
            this.phase === Phase.ChunkExt &&
            !(
              (this.ext === Ext.Name && this.extNameBytes > 0) ||
              this.ext === Ext.Token ||
              this.ext === Ext.Done
            )
          )
            throw new Http1Error(400, 'malformed chunk extension');
          this.phase = Phase.ChunkSizeLf;
          return;
        }
        if (++this.lineBytes > limits.maxChunkLineBytes)
          throw new Http1Error(400, `chunk-size line over ${limits.maxChunkLineBytes} bytes`);
        if (this.phase === Phase.ChunkExt) {
          this.extByte(b);
          return;
        }
        if (b === 0x3b && this.chunkDigits > 0) {
          this.phase = Phase.ChunkExt;
          this.ext = Ext.Name;
          this.extNameBytes = 0;
          return;
        }
        const v = hexValue(b);
        if (v < 0 || ++this.chunkDigits > 8) throw new Http1Error(400, 'malformed chunk size');
        this.chunkSize = this.chunkSize * 16 + v;
        return;
      }
      case Phase.ChunkSizeLf: {
        if (b !== LF) throw new Http1Error(400, 'chunk size not followed by CRLF');
        const size = this.chunkSize;
        this.resetChunkLine();
        if (size === 0) {
          this.phase = Phase.Trailer;
          this.trailerLine = '';
          return;
        }
        if (this.bodyBytes + size > limits.maxBodyBytes)
          throw new Http1Error(413, `request body over ${limits.maxBodyBytes} bytes`);
        this.remaining = size;
        this.phase = Phase.ChunkData;
        return;
      }
      case Phase.ChunkDataCr:
        if (b !== CR) throw new Http1Error(400, 'chunk data not followed by CRLF');
        this.phase = Phase.ChunkDataLf;
        return;
      case Phase.ChunkDataLf:
        if (b !== LF) throw new Http1Error(400, 'chunk data not followed by CRLF');
        this.phase = Phase.ChunkSize;
        return;
      case Phase.Trailer: {
        if (++this.trailerBytes > limits.maxChunkLineBytes)
          throw new Http1Error(400, `trailer section over ${limits.maxChunkLineBytes} bytes`);
        if (b === CR) {
          this.phase = Phase.TrailerLf;
          return;
        }
        if (b === LF) throw new Http1Error(400, 'bare LF in the trailer section');
        if ((b < 0x20 && b !== 0x09) || b === 0x7f)
          throw new Http1Error(400, 'invalid character in a trailer');
        this.trailerLine += String.fromCharCode(b);
        return;
      }
      case Phase.TrailerLf: {
        if (b !== LF) throw new Http1Error(400, 'CR not followed by LF in the trailer section');
        const line = this.trailerLine;
        if (line === '') {
          this.finish();
          return;
        }
        // Trailers are dropped, but only well-formed ones.
        const colon = line.indexOf(':');
        if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) throw new Http1Error(400, 'malformed trailer');
        this.trailerLine = '';
        this.phase = Phase.Trailer;
        return;
      }
    }
  }

  /**
   * One byte of `;name[=value]` after a chunk size (RFC 9112 7.1.1), without optional whitespace:
   * names are tokens, values tokens or quoted strings. Extensions are dropped, but only valid ones
   * are let through: llhttp refuses the others, and so must anything in front of it.
   */
  private extByte(b: number): void {
    const bad = (): never => {
      throw new Http1Error(400, 'malformed chunk extension');
    };
    switch (this.ext) {
      case Ext.Name:
        if (b === 0x3d && this.extNameBytes > 0) this.ext = Ext.ValueStart;
        else if (b === 0x3b && this.extNameBytes > 0) this.extNameBytes = 0;
        else if (isTchar(b)) this.extNameBytes++;
        else bad();
        return;
      case Ext.ValueStart:
        if (b === 0x22) this.ext = Ext.Quoted;
        else if (isTchar(b)) this.ext = Ext.Token;
        else bad();
        return;
      case Ext.Token:
      case Ext.Done:
        if (b === 0x3b) {
          this.ext = Ext.Name;
          this.extNameBytes = 0;
        } else if (this.ext === Ext.Token && isTchar(b)) return;
        else bad();
        return;
      case Ext.Quoted:
        if (b === 0x22) this.ext = Ext.Done;
        else if (b === 0x5c) this.ext = Ext.Escape;
        else if (b === 0x09 || (b >= 0x20 && b < 0x7f)) return;
        else bad();
        return;
      case Ext.Escape:
        if (b === 0x09 || (b >= 0x20 && b < 0x7f)) this.ext = Ext.Quoted;
        else bad();
        return;
    }
  }

  private finish(): void {
    const parts = this.bodyParts;
    const body =
      this.bodyBytes === 0
        ? undefined
        : parts.length === 1
          ? parts[0]!
          : Buffer.concat(parts, this.bodyBytes);
    this.done = { head: this.head!, body };
    this.phase = Phase.Head;
    this.seen = 0;
    this.headBytes = 0;
    this.lineBytes = 0;
    this.headerLines = 0;
    this.sawCr = false;
    this.head = undefined;
    this.bodyParts = [];
    this.bodyBytes = 0;
    this.remaining = 0;
    this.trailerBytes = 0;
  }
}
