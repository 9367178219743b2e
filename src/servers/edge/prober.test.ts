/**
 * The prober judges the probes of one round together: a timeout waits until the round's other
 * probes have answered or reached their own deadlines (issue 18: the shortest paths of a lab that
 * stalled as a whole were ejected before the longer paths' silence could count).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Pool } from 'undici';
import type { HealthEvent } from '../../core/health.js';
import { H1Pool } from './h1pool.js';
import { ProbeRound, probeOnce, startProber } from './prober.js';
import type { Upstream } from './upstreams.js';

/** A /healthz that answers 200 after `delayMs`, or never (`hang`). */
async function healthz(delayMs: number | 'hang'): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    if (delayMs === 'hang') return;
    setTimeout(() => res.end('ok'), delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}` };
}

const upstream = (region: string, url: string): Upstream => ({
  region,
  url,
  pool: new H1Pool(url, {
    connections: 1,
    keepAliveTimeoutMs: 1000,
    headersTimeoutMs: 1000,
    bodyTimeoutMs: 1000,
  }),
  probe: new Pool(url),
});

describe('prober rounds', () => {
  const servers: Server[] = [];
  const upstreams: Upstream[] = [];
  after(async () => {
    for (const u of upstreams) {
      await u.probe.destroy();
      await u.pool.destroy();
    }
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  it('holds a timeout until the round closes, so a late answer in the meantime proves life', async () => {
    // "near" misses its 30 ms deadline by ~100 ms; "far" stays silent up to its 2 s deadline.
    const near = await healthz(130);
    const far = await healthz('hang');
    servers.push(near.server, far.server);
    const ups = new Map([
      ['near', upstream('near', near.url)],
      ['far', upstream('far', far.url)],
    ]);
    upstreams.push(...ups.values());
    const seen: { region: string; ev: HealthEvent }[] = [];
    const prober = startProber(
      ups,
      {
        intervalMs: 60_000,
        timeoutMs: 1000,
        maxTimeoutMs: 2000,
        timeoutFor: (r) => (r === 'near' ? 30 : 2000),
      },
      (region, ev) => seen.push({ region, ev }),
    );
    await prober.firstRound;
    prober.stop();
    const nearEvents = seen.filter((s) => s.region === 'near').map((s) => s.ev.kind);
    // Judged alone, "near" reported a timeout at 30 ms and the answer after it.
    assert.deepEqual(nearEvents, ['probe-ok']);
    assert.deepEqual(
      seen.filter((s) => s.region === 'far').map((s) => s.ev.kind),
      ['probe-failed'],
    );
  });

  it("allows a probe that must open a connection one more deadline, and marks its RTT as not the path's", async () => {
    // The deadlines are read from the verdicts, not timed: the server answers at once, or never.
    let hang = false;
    const server = createServer((_req, res) => {
      if (!hang) res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const verdict = (u: Upstream, timeoutMs: number, maxWaitMs: number): Promise<HealthEvent> =>
      new Promise((resolve) => void probeOnce(u, timeoutMs, resolve, maxWaitMs));

    const warm = upstream('warm', url);
    upstreams.push(warm);
    const first = await verdict(warm, 5000, 5000);
    assert.equal(first.kind, 'probe-ok');
    assert.equal(
      first.kind === 'probe-ok' && first.fresh,
      true,
      'it opened the connection: no clean RTT sample',
    );
    await new Promise((r) => setTimeout(r, 20)); // the pool marks the connection idle
    assert.equal(warm.probe.stats.free, 1);
    hang = true;
    const overWarm = await verdict(warm, 40, 1000);
    assert.equal(
      overWarm.kind === 'probe-failed' && overWarm.reason,
      'no answer in 40 ms',
      'the RTO, no more',
    );

    const cold = upstream('cold', url);
    upstreams.push(cold);
    const overCold = await verdict(cold, 40, 1000);
    assert.equal(overCold.kind === 'probe-failed' && overCold.reason, 'no answer in 80 ms', 'one more RTO');
    const capped = upstream('capped', url);
    upstreams.push(capped);
    const atCeiling = await verdict(capped, 40, 50);
    assert.equal(
      atCeiling.kind === 'probe-failed' && atCeiling.reason,
      'no answer in 50 ms',
      'never past the ceiling',
    );
  });

  it('releases the held timeouts when the last probe settles, first failures first', () => {
    const r = new ProbeRound();
    const out: string[] = [];
    r.join();
    r.join();
    r.join();
    r.hold(() => out.push('second failure'), 1);
    r.settle();
    r.hold(() => out.push('first failure'), 0);
    r.settle();
    assert.deepEqual(out, [], 'one probe of the round is still within its deadline');
    r.settle();
    assert.deepEqual(out, ['first failure', 'second failure']);
  });

  it('reports a silent region at its deadline when the others answered', () => {
    const r = new ProbeRound();
    const out: string[] = [];
    r.join();
    r.join();
    r.settle(); // the other region answered
    r.hold(() => out.push('timeout'), 1);
    r.settle();
    assert.deepEqual(out, ['timeout']);
  });
});
