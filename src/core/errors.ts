/** Every error Meridian raises: a stable code, its HTTP status, and a message, made in one place. */

export const errorStatus = {
  bad_json: 400,
  bad_key: 400,
  bad_token: 400,
  bad_request: 400,
  too_deep: 400,
  unauthorized: 401,
  forbidden: 403,
  read_only: 403,
  unknown_collection: 404,
  not_found: 404,
  wrong_policy: 405,
  request_timeout: 408,
  idempotency_in_progress: 409,
  too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  misdirected: 421,
  idempotency_mismatch: 422,
  headers_too_large: 431,
  internal: 500,
  not_implemented: 501,
  not_caught_up: 503,
  unavailable: 503,
  sync_timeout: 504,
  clock_skew: 503,
  insufficient_funds: 409,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export interface MeridianErrorDetails {
  /** The region that can serve the request instead (421, 503). */
  replayRegion?: string;
  /** For 504: the write committed locally and will replicate, but was not confirmed in time. */
  indefinite?: boolean;
  [extra: string]: unknown;
}

export class MeridianError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: MeridianErrorDetails;

  constructor(code: ErrorCode, message: string, details: MeridianErrorDetails = {}) {
    super(message);
    this.name = 'MeridianError';
    this.code = code;
    this.status = errorStatus[code];
    this.details = details;
  }

  /** The JSON error body of DESIGN.md: `{"error": {"code", "message"}}`. */
  toBody(): { error: { code: ErrorCode; message: string } & MeridianErrorDetails } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

export function isMeridianError(e: unknown): e is MeridianError {
  return e instanceof MeridianError;
}
