/**
 * One request to a region node through undici's dispatcher interface, with the answer buffered
 * whole. The edge's answers are small JSON documents (1 MiB at most), so buffering costs little
 * and buys a lot: no per-request stream objects on the hot path (which profiling showed cost more
 * than the proxying itself), one write to the client, and a clean discard when the edge replays
 * or retries instead of delivering.
 */
import type { Dispatcher } from 'undici';

export interface UpstreamRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
}

export interface UpstreamAnswer {
  status: number;
  /** Lower-case names, as undici parses them. */
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/**
 * Lets the edge give up on a request in flight (its region was just ejected), whether it is still
 * queued in the pool or already on a socket: a plain object rather than an AbortSignal, which
 * costs more per request than the rest of the dispatch.
 */
export interface Cancel {
  cancel(reason: Error): void;
}

/**
 * @example
 * const answer = await forward(pool, { method: 'GET', path: '/v1/settings/theme', headers: {}, body: undefined });
 */
export function forward(
  dispatcher: Dispatcher,
  req: UpstreamRequest,
  cancel?: Cancel,
): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: Record<string, string | string[]> = {};
    const chunks: Buffer[] = [];
    let cancelled: Error | undefined;
    let abort: ((reason: Error) => void) | undefined;
    if (cancel) {
      cancel.cancel = (reason) => {
        cancelled = reason;
        abort?.(reason);
        reject(reason);
      };
    }
    dispatcher.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: req.headers,
        body: req.body ?? null,
      },
      {
        onRequestStart(controller) {
          // Still queued when cancelled: it must not leave for the ejected region at all.
          if (cancelled) controller.abort(cancelled);
          else if (cancel) abort = (reason) => controller.abort(reason);
        },
        onResponseStart(_controller, statusCode, h) {
          if (statusCode < 200) return; // 1xx informational: the real answer follows
          status = statusCode;
          headers = h as Record<string, string | string[]>;
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          resolve({
            status,
            headers,
            body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
          });
        },
        onResponseError(_controller, err) {
          reject(err);
        },
      },
    );
  });
}
