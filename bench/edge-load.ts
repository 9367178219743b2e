/**
 * Load generators for the edge benchmarks: `wrk` for peak throughput (it costs the least CPU on a
 * small machine, so the proxy rather than the client is the bottleneck), and an undici-based
 * closed-loop and fixed-rate generator for latency at a given rate and for failover runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';

export interface LoadResult {
  tool: 'wrk' | 'undici';
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export function hasWrk(): boolean {
  return spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(samples: number[], errors: number, elapsedMs: number): LoadResult {
  const sorted = Float64Array.from(samples).sort();
  return {
    tool: 'undici',
    requests: samples.length,
    errors,
    rps: (samples.length / elapsedMs) * 1000,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

function wrkMs(text: string, label: string): number {
  const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

let pacingScript: string | undefined;

/** A wrk script that waits `delayMs` between a connection's requests (wrk's `delay()` hook). */
function pacing(delayMs: number): string {
  pacingScript ??= mkdtempSync(join(tmpdir(), 'meridian-wrk-'));
  const path = join(pacingScript, `pace-${delayMs}.lua`);
  writeFileSync(path, `function delay() return ${delayMs} end\n`);
  return path;
}

/**
 * Peak throughput with wrk: one thread, `connections` keep-alive connections, for `durationMs`.
 * With `delayMs`, each connection pauses that long between requests, which paces the offered load
 * at about connections * 1000 / (delayMs + latency) requests per second.
 */
export function runWrk(
  url: string,
  connections: number,
  durationMs: number,
  delayMs?: number,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', [
      '-t1',
      `-c${connections}`,
      `-d${Math.max(1, Math.round(durationMs / 1000))}s`,
      '--latency',
      ...(delayMs === undefined ? [] : ['-s', pacing(delayMs)]),
      url,
    ]);
    let out = '';
    p.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    p.on('error', reject);
    p.on('close', () => {
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
      if (!Number.isFinite(rps)) {
        reject(new Error(`wrk output not understood:\n${out}`));
        return;
      }
      resolve({ tool: 'wrk', requests, errors, rps, p50Ms: wrkMs(out, '50%'), p99Ms: wrkMs(out, '99%') });
    });
  });
}

/** Closed loop: `connections` workers, each sending its next request when the last is answered. */
export async function closedLoop(url: string, connections: number, durationMs: number): Promise<LoadResult> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections, pipelining: 1 });
  const samples: number[] = [];
  let errors = 0;
  const started = performance.now();
  const until = started + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path: u.pathname + u.search });
        await res.body.dump();
        if (res.statusCode >= 400) errors++;
        else samples.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = performance.now() - started;
  await pool.destroy();
  return summarize(samples, errors, elapsed);
}

/**
 * Fixed rate (open loop): requests leave on a schedule of `rate` per second whatever the answers
 * do, so a slow proxy shows up as latency rather than as a politely lower rate. Latency is timed
 * from the scheduled send, so queueing in the client counts against the server (no coordinated
 * omission).
 */
export async function fixedRate(
  url: string,
  rate: number,
  durationMs: number,
  connections = 64,
): Promise<LoadResult> {
  const u = new URL(url);
  const path = u.pathname + u.search;
  const pool = new Pool(u.origin, { connections, pipelining: 1 });
  const samples: number[] = [];
  let errors = 0;
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const total = Math.floor((rate * durationMs) / 1000);
  const one = async (scheduled: number): Promise<void> => {
    try {
      const res = await pool.request({ method: 'GET', path });
      await res.body.dump();
      if (res.statusCode >= 400) errors++;
      else samples.push(performance.now() - scheduled);
    } catch {
      errors++;
    }
  };
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - started) * rate) / 1000));
    while (sent < due) {
      const scheduled = started + (sent * 1000) / rate;
      const p = one(scheduled);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  const elapsed = performance.now() - started;
  await pool.destroy();
  return summarize(samples, errors, elapsed);
}
