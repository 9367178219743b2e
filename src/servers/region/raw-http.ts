/**
 * What the node decides about a request before its router does: the request target's form, the
 * transfer codings it accepts, and the answer to a request Node's HTTP parser itself refuses.
 * Every refusal is in the contract's shape `{"error":{"code","message"}}`.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type ErrorCode, MeridianError } from '../../core/errors.js';

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * Turns an absolute-form target (`http://host/path`, RFC 9112 3.2.2, which a server must accept)
 * into its origin form, so every hook, log line and 404 sees the same path the router matches.
 * Dot segments and repeated slashes are left as sent: they name other paths, which have no route
 * (a document key of `.` or `..` is a key like any other).
 * @example
 *   originForm('http://x/internal/v1/status?a=1'); // '/internal/v1/status?a=1'
 */
export function originForm(target: string): string {
  if (target.startsWith('/')) return target;
  const m = ABSOLUTE_FORM.exec(target);
  if (!m) return target;
  const rest = target.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * Only `chunked` alone: the node decodes no other transfer coding, and a body it cannot decode must
 * not reach the JSON parser as if it were plain (RFC 9112 6.1: 501 for an unknown coding).
 */
export function checkTransferEncoding(raw: string | string[] | undefined): void {
  if (raw === undefined) return;
  const codings = (Array.isArray(raw) ? raw.join(',') : raw)
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c.length > 0);
  if (codings.length !== 1 || codings[0] !== 'chunked') {
    throw new MeridianError(
      'not_implemented',
      `Transfer-Encoding '${String(raw)}' is not supported: send the body as is or chunked`,
    );
  }
}

/** A body in a content coding (gzip, br...) is not JSON the node can read (RFC 7694: 415). */
export function checkContentEncoding(raw: string | string[] | undefined): void {
  if (raw === undefined) return;
  const v = (Array.isArray(raw) ? raw.join(',') : raw).trim().toLowerCase();
  if (v !== '' && v !== 'identity') {
    throw new MeridianError(
      'unsupported_media_type',
      `Content-Encoding '${v}' is not supported: send plain JSON`,
    );
  }
}

/** What Node's parser errors mean to a client (its `code`, from llhttp or the server's timers). */
function parserError(code: string, maxHeaderBytes: number): MeridianError {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new MeridianError(
      'headers_too_large',
      `the request line and headers are over ${maxHeaderBytes} bytes`,
    );
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new MeridianError('request_timeout', 'the request was not received in time');
  }
  return new MeridianError('bad_request', `malformed HTTP request (${code})`);
}

/**
 * Answers a request Node's parser refused, on the raw socket (there is no request object), then
 * closes the connection: its byte stream can no longer be trusted to frame the next request.
 */
export function clientErrorHandler(region: string, maxHeaderBytes: number) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    if (socket.writable) {
      const e = parserError(err.code ?? 'unknown', maxHeaderBytes);
      const body = JSON.stringify(e.toBody());
      const status: number = e.status;
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
          'content-type: application/json; charset=utf-8\r\n' +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          `meridian-region: ${region}\r\n` +
          'connection: close\r\n\r\n' +
          body,
      );
    }
    socket.destroy();
  };
}

/** The router's own refusals (bad percent-encoding, an over-long parameter) in the contract's shape. */
export function frameworkError(code: string | undefined): MeridianError {
  const known: Record<string, [ErrorCode, string]> = {
    FST_ERR_BAD_URL: ['bad_request', 'the path is not valid percent-encoded UTF-8'],
    FST_ERR_MAX_PARAM_LENGTH: ['uri_too_long', 'a path segment is over the length limit'],
  };
  const [c, message] = known[code ?? ''] ?? ['bad_request', 'the request could not be routed'];
  return new MeridianError(c, message);
}
