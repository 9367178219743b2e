/** Maps everything a request can fail with (ours, fastify's, unexpected) to one MeridianError. */
import { isMeridianError, MeridianError } from '../../core/errors.js';

const FASTIFY_CODES: Record<string, (e: Error) => MeridianError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () =>
    new MeridianError('unsupported_media_type', 'send the body as JSON (Content-Type: application/json)'),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new MeridianError('too_large', 'the request body is over the size limit'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new MeridianError('bad_json', 'the body is empty; send a JSON document'),
  FST_ERR_CTP_INVALID_JSON_BODY: (e) => new MeridianError('bad_json', `malformed JSON: ${e.message}`),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    new MeridianError('bad_request', 'Content-Length does not match the body'),
  FST_ERR_BAD_URL: () => new MeridianError('bad_key', 'the URL is not valid percent-encoding'),
};

/** True for errors the client caused; the rest are logged as server faults. */
export function toMeridianError(e: unknown): MeridianError {
  if (isMeridianError(e)) return e;
  const err = e as Error & { code?: string; statusCode?: number };
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return mapped(err);
  // The JSON parser's own errors (SyntaxError, prototype poisoning) come as plain 400s.
  if (err.statusCode === 400 || err instanceof SyntaxError) {
    return new MeridianError('bad_json', `malformed JSON: ${err.message}`);
  }
  if (err.statusCode === 413)
    return new MeridianError('too_large', 'the request body is over the size limit');
  if (err.statusCode === 415) return new MeridianError('unsupported_media_type', 'send the body as JSON');
  return new MeridianError('internal', 'internal error');
}
