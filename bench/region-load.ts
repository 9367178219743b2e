/**
 * HTTP write load for the region benchmarks: closed loop (fixed concurrency, as fast as answers
 * come) or open loop (a fixed rate, latency measured from each write's scheduled time so a stall
 * is not hidden by coordinated omission). Runs inline or in a worker thread, so that a load
 * generator does not share an event loop with the WAN emulator it is measuring through.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Pool } from 'undici';

export interface LoadSpec {
  url: string;
  /** Path of write i, e.g. `/v1/settings/k${i}`. Given as a template: `{i}` is replaced. */
  pathTemplate: string;
  method: 'PUT' | 'POST';
  /** Body template (JSON text), `{i}` replaced. */
  bodyTemplate: string;
  durationMs: number;
  /** Closed loop: requests in flight. */
  concurrency?: number;
  /** Open loop: writes per second. */
  ratePerSec?: number;
  connections?: number;
  /**
   * Runs the same load this long first and discards it: a fresh worker opens its connections and
   * compiles its hot paths during its first few hundred milliseconds, and an open-loop client that
   * is late for those counts its own start-up as the server's latency.
   */
  warmupMs?: number;
}

export interface LoadResult {
  ok: number;
  failed: number;
  elapsedMs: number;
  /** Latency of each acknowledged write, ms. */
  latenciesMs: number[];
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.url, { connections: spec.connections ?? spec.concurrency ?? 64, pipelining: 1 });
  const n = { next: 0 };
  if (spec.warmupMs) await loadPhase(pool, spec, spec.warmupMs, n);
  const result = await loadPhase(pool, spec, spec.durationMs, n);
  await pool.close();
  return result;
}

async function loadPhase(
  pool: Pool,
  spec: LoadSpec,
  durationMs: number,
  n: { next: number },
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let ok = 0;
  let failed = 0;
  const one = async (scheduledMs: number): Promise<void> => {
    const i = n.next++;
    try {
      const res = await pool.request({
        path: spec.pathTemplate.replaceAll('{i}', String(i)),
        method: spec.method,
        headers: { 'content-type': 'application/json' },
        body: spec.bodyTemplate.replaceAll('{i}', String(i)),
      });
      await res.body.dump();
      if (res.statusCode === 200) {
        ok++;
        latenciesMs.push(performance.now() - scheduledMs);
      } else failed++;
    } catch {
      failed++;
    }
  };
  const t0 = performance.now();
  const end = t0 + durationMs;
  if (spec.ratePerSec) {
    const gapMs = 1000 / spec.ratePerSec;
    const pending: Promise<void>[] = [];
    let next = t0;
    while (next < end) {
      const now = performance.now();
      while (next <= now && next < end) {
        pending.push(one(next));
        next += gapMs;
      }
      // Sleep until the next write is due (timers have 1 ms granularity): polling every
      // millisecond at low rates would wake this thread a thousand times a second for nothing,
      // and on a 2-core machine each wake-up takes a CPU from the node being measured.
      await new Promise((r) => setTimeout(r, Math.max(1, Math.floor(next - performance.now()))));
    }
    await Promise.all(pending);
  } else {
    const worker = async () => {
      while (performance.now() < end) await one(performance.now());
    };
    await Promise.all(Array.from({ length: spec.concurrency ?? 64 }, worker));
  }
  const elapsedMs = performance.now() - t0;
  return { ok, failed, elapsedMs, latenciesMs };
}

/** Runs the load in a worker thread (same tsx loader as this process). */
export function runLoadInWorker(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    // Node 20 does not hand the tsx loader to workers: the worker registers it, then loads this file.
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const w = new Worker(boot, { eval: true, workerData: spec });
    w.once('message', (m: LoadResult) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load worker exited with ${code}`));
    });
  });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

if (!isMainThread && parentPort && (workerData as LoadSpec | undefined)?.url) {
  const port = parentPort;
  runLoad(workerData as LoadSpec).then((r) => port.postMessage(r));
}
