import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { loadRegionTable } from '../../adapters/region-table.js';
import { WanEmulator } from './emulator.js';
import type { HostPort } from './link.js';
import { buildMesh, meshRoutes } from './mesh.js';

/** Upper slack for timing checks: a shared 2-core machine can run timers a few ms late. */
const SLACK_MS = 8;

async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * Timing on a loaded machine: `attempt` asserts the hard bounds itself (the emulator never delivers
 * early, so lower bounds hold on every attempt) and returns a message when a soft (upper) bound was
 * missed; scheduling noise only ever adds time, so one attempt of `attempts` within it suffices.
 */
async function someAttempt(attempts: number, attempt: () => Promise<string | undefined>): Promise<void> {
  const misses: string[] = [];
  for (let i = 0; i < attempts; i++) {
    const miss = await attempt();
    if (miss === undefined) return;
    misses.push(miss);
  }
  assert.fail(`no attempt within bounds: ${misses.join('; ')}`);
}

const over = (what: string, value: number, max: number): string | undefined =>
  value <= max ? undefined : `${what} ${value.toFixed(1)} ms > ${max} ms`;

interface TestServer {
  target: HostPort;
  /** performance.now() of each chunk's arrival, with its bytes. */
  arrivals: { atMs: number; data: Buffer }[];
  sockets: Socket[];
  server: Server;
}

/** An echo server that records when bytes arrive (same process, same clock as the client). */
async function echoServer(tag = ''): Promise<TestServer> {
  const ts: TestServer = {
    target: { host: '127.0.0.1', port: 0 },
    arrivals: [],
    sockets: [],
    server: createServer(),
  };
  ts.server = createServer({ allowHalfOpen: true }, (s) => {
    ts.sockets.push(s);
    s.setNoDelay(true);
    s.on('error', () => {});
    if (tag) s.write(tag);
    s.on('data', (d: Buffer) => {
      ts.arrivals.push({ atMs: performance.now(), data: d });
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => ts.server.listen(0, '127.0.0.1', r));
  ts.target.port = (ts.server.address() as AddressInfo).port;
  servers.push(ts.server);
  return ts;
}

const servers: Server[] = [];
const wans: WanEmulator[] = [];
after(async () => {
  await Promise.all(wans.map((w) => w.close()));
  for (const s of servers) {
    s.close();
  }
});

function newWan(...args: ConstructorParameters<typeof WanEmulator>): WanEmulator {
  const w = new WanEmulator(...args);
  wans.push(w);
  return w;
}

class Client {
  readonly socket: Socket;
  private parts: Buffer[] = [];
  receivedBytes = 0;
  chunks: { atMs: number; data: Buffer }[] = [];
  closed = false;
  closedAtMs = 0;
  /** When the local connect completed (the proxy accepted): where emulated time starts. */
  connectedAtMs = 0;
  error: Error | undefined;
  constructor(at: HostPort) {
    this.socket = createConnection({ ...at, noDelay: true }, () => {
      this.connectedAtMs = performance.now();
    });
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push({ atMs: performance.now(), data: d });
      this.parts.push(d);
      this.receivedBytes += d.length;
    });
    this.socket.on('error', (e) => {
      this.error = e;
    });
    this.socket.on('close', () => {
      this.closedAtMs = performance.now();
      this.closed = true;
    });
  }
  get received(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] ?? Buffer.alloc(0);
  }
  async connected(): Promise<void> {
    if (!this.socket.connecting) return;
    await new Promise((r) => this.socket.once('connect', r));
  }
  /** Sends `msg` and resolves with the round-trip time once it is echoed back. */
  async ping(msg: string, timeoutMs = 5000): Promise<number> {
    const want = this.receivedBytes + msg.length;
    const t0 = performance.now();
    this.socket.write(msg);
    await waitFor(() => this.receivedBytes >= want, timeoutMs, `echo of ${msg}`);
    return this.chunks[this.chunks.length - 1]!.atMs - t0;
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

describe('WanEmulator', () => {
  it('delays each direction by its own one-way delay, and the round trip by their sum', async () => {
    const srv = await echoServer();
    const wan = newWan();
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 15 });
    wan.setDelay('b', 'a', 25);
    const c = new Client(via);
    await c.ping('warmup');
    await someAttempt(3, async () => {
      const fwd: number[] = [];
      const rev: number[] = [];
      const rtt: number[] = [];
      for (let i = 0; i < 8; i++) {
        const n = srv.arrivals.length;
        const t0 = performance.now();
        const r = await c.ping(`p${i}`);
        const t1 = srv.arrivals[n]!.atMs;
        fwd.push(t1 - t0);
        rev.push(t0 + r - t1);
        rtt.push(r);
      }
      console.log(
        `  one-way a->b ${median(fwd).toFixed(1)} ms, b->a ${median(rev).toFixed(1)} ms, rtt ${median(rtt).toFixed(1)} ms`,
      );
      assert.ok(Math.min(...fwd) >= 15 - 1, `a->b never faster than configured: ${fwd}`);
      assert.ok(Math.min(...rev) >= 25 - 1, `b->a never faster than configured: ${rev}`);
      return (
        over('median a->b', median(fwd), 15 + SLACK_MS) ??
        over('median b->a', median(rev), 25 + SLACK_MS) ??
        over('median rtt', median(rtt), 40 + SLACK_MS)
      );
    });
    c.socket.destroy();
  });

  it('makes a new connection pay the handshake: the first answer takes two round trips', async () => {
    const srv = await echoServer();
    const wan = newWan();
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 20 });
    await someAttempt(3, async () => {
      const t0 = performance.now();
      const c = new Client(via);
      c.socket.write('hello');
      await waitFor(() => c.received.length === 5);
      c.socket.destroy();
      const at = c.chunks[0]!.atMs;
      assert.ok(at - t0 >= 80 - 1, `first answer after ${at - t0} ms, want 80`);
      // From the local connect (≈ the proxy's accept), not from our call: the first connect of a
      // process can take tens of ms by itself.
      return over('first answer', at - c.connectedAtMs, 80 + SLACK_MS);
    });
  });

  it('pipelines: messages sent back to back all take the delay, not the delay each', async () => {
    const srv = await echoServer();
    const wan = newWan({ handshake: false });
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 50 });
    await someAttempt(3, async () => {
      const c = new Client(via);
      await c.connected();
      const sent: number[] = [];
      for (let i = 0; i < 20; i++) {
        sent.push(performance.now());
        c.socket.write(`m${String(i).padStart(2, '0')};`);
        await new Promise((r) => setTimeout(r, 3));
      }
      await waitFor(() => c.received.length === 20 * 4, 5000, 'all echoes');
      c.socket.destroy();
      assert.equal(
        c.received.toString(),
        Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, '0')};`).join(''),
      );
      const lastMs = c.chunks[c.chunks.length - 1]!.atMs - sent[sent.length - 1]!;
      assert.ok(lastMs >= 100 - 1, `last echo ${lastMs} ms after its send`);
      return over('last echo after its send', lastMs, 100 + SLACK_MS * 2);
    });
  });

  it('changes the delay at runtime', async () => {
    const srv = await echoServer();
    const wan = newWan();
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 5 });
    const c = new Client(via);
    await c.ping('warm');
    await someAttempt(3, async () => {
      wan.setRtt('a', 'b', 10);
      const before = median([await c.ping('1'), await c.ping('2'), await c.ping('3')]);
      wan.setRtt('a', 'b', 60);
      assert.deepEqual(wan.path('a', 'b').delayMs, 30);
      const afterMs = median([await c.ping('4'), await c.ping('5'), await c.ping('6')]);
      assert.ok(before >= 10 - 1 && afterMs >= 60 - 1, `before ${before}, after ${afterMs}`);
      return over('before', before, 10 + SLACK_MS) ?? over('after', afterMs, 60 + SLACK_MS);
    });
    c.socket.destroy();
  });

  it('keeps every byte in order through jitter, both ways, for a large transfer', async () => {
    const srv = await echoServer();
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const wan = newWan({ random });
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 5, jitterMs: 4 });
    const data = randomBytes(16 * 1024 * 1024);
    const c = new Client(via);
    const t0 = performance.now();
    c.socket.end(data);
    await waitFor(() => c.closed, 30_000, 'the echo to finish');
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `  16 MiB echoed in ${secs.toFixed(2)} s (${((2 * 16) / secs).toFixed(0)} MiB/s through the link)`,
    );
    assert.equal(c.error, undefined);
    assert.equal(c.received.length, data.length);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(c.received), sha(data));
    const s = wan.stats()[0]!;
    assert.equal(s.bytesForward, data.length);
    assert.equal(s.bytesReverse, data.length);
  });

  it('emulates loss as a retransmission stall, never as missing bytes', async () => {
    const srv = await echoServer();
    await someAttempt(3, async () => {
      // The first draw loses the first chunk once; every later draw delivers.
      const draws = [0];
      const wan = newWan({ random: () => draws.shift() ?? 0.999, minRtoMs: 100, handshake: false });
      const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 10, lossRate: 0.01 });
      const c = new Client(via);
      await c.connected();
      const first = await c.ping('lost-once');
      const normal = median([await c.ping('f1'), await c.ping('f2'), await c.ping('f3')]);
      console.log(`  lost chunk: round trip ${first.toFixed(1)} ms, then ${normal.toFixed(1)} ms`);
      assert.equal(c.received.toString(), 'lost-oncef1f2f3');
      c.socket.destroy();
      await wan.close();
      assert.ok(first >= 120 - 1, `stalled round trip ${first}, want 10 + 100 + 10`);
      assert.ok(normal >= 20 - 1, `later round trips ${normal}`);
      return (
        over('stalled round trip', first, 120 + SLACK_MS) ?? over('later round trips', normal, 20 + SLACK_MS)
      );
    });
  });

  it('cut resets open connections and new ones until healed', async () => {
    const srv = await echoServer();
    const wan = newWan({ handshake: false });
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 2 });
    const c = new Client(via);
    await c.ping('up');
    wan.cut('a', 'b', 'cut');
    await waitFor(() => c.closed, 2000, 'the open connection to be reset');
    assert.equal((c.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
    await waitFor(() => srv.sockets.every((s) => s.destroyed), 2000, 'the server side to be reset');

    const d = new Client(via);
    d.socket.write('x');
    await waitFor(() => d.closed, 2000, 'a new connection to be refused');
    assert.equal(d.received.length, 0);
    assert.equal(srv.arrivals.length, 1, 'nothing crossed the cut link');
    assert.equal(wan.state('a', 'b'), 'cut');
    assert.ok(wan.stats()[0]!.resetConnections >= 2);

    wan.heal('a', 'b');
    const e = new Client(via);
    assert.ok((await e.ping('healed')) >= 4 - 1);
    e.socket.destroy();
  });

  it('partition holds traffic without closing anything, and heal delivers it', async () => {
    const srv = await echoServer();
    const wan = newWan({ handshake: false });
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 5 });
    const c = new Client(via);
    await c.ping('before');
    const accepted = srv.sockets.length;
    wan.split('a', 'b', 'partition');
    assert.equal(wan.state('a', 'b'), 'partition');
    c.socket.write('during');
    const d = new Client(via);
    d.socket.write('new');
    await d.connected();
    // Absence can only be shown by waiting: several delays long, nothing may arrive.
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(srv.arrivals.length, 1, 'nothing crossed the partition');
    assert.equal(
      srv.sockets.length,
      accepted,
      'a connection opened during the partition does not reach the server',
    );
    assert.equal(c.closed || d.closed, false);

    const healedAt = performance.now();
    wan.heal('a', 'b');
    await waitFor(() => c.received.toString() === 'beforeduring' && d.received.toString() === 'new');
    const back = Math.max(c.chunks.at(-1)!.atMs, d.chunks.at(-1)!.atMs) - healedAt;
    assert.ok(back >= 10 - 1, `held bytes still take the delay after the heal (${back} ms)`);
    assert.equal(srv.sockets.length, accepted + 1);
    c.socket.destroy();
    d.socket.destroy();
  });

  it('reaches a target that is down as a reset after one round trip', async () => {
    const srv = await echoServer();
    srv.server.close();
    const wan = newWan();
    const via = await wan.addLink({ from: 'a', to: 'b', target: srv.target, delayMs: 10 });
    await someAttempt(3, async () => {
      const t0 = performance.now();
      const c = new Client(via);
      await waitFor(() => c.closed, 2000, 'the reset');
      assert.equal((c.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET');
      assert.ok(c.closedAtMs - t0 >= 20 - 1, `reset after ${c.closedAtMs - t0} ms`);
      return over('reset', c.closedAtMs - c.connectedAtMs, 20 + SLACK_MS);
    });
  });

  it('carries many concurrent HTTP keep-alive connections', async () => {
    const http = createHttpServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => res.end(createHash('sha256').update(Buffer.concat(parts)).digest('hex')));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    servers.push(http as unknown as Server);
    const wan = newWan();
    const via = await wan.addLink({
      from: 'a',
      to: 'b',
      target: { host: '127.0.0.1', port: (http.address() as AddressInfo).port },
      delayMs: 5,
    });
    const n = 200;
    const bodies = Array.from({ length: n }, () => randomBytes(8 * 1024));
    const t0 = performance.now();
    const answers = await Promise.all(
      bodies.map((b) =>
        fetch(`http://${via.host}:${via.port}/`, { method: 'POST', body: b }).then((r) => r.text()),
      ),
    );
    const ms = performance.now() - t0;
    console.log(`  ${n} concurrent requests through a 10 ms RTT link in ${ms.toFixed(0)} ms`);
    for (let i = 0; i < n; i++)
      assert.equal(answers[i], createHash('sha256').update(bodies[i]!).digest('hex'));
    assert.ok(wan.stats()[0]!.acceptedConnections >= 1);
    http.closeAllConnections();
  });

  it('builds the full mesh from the region table, one-way = RTT / 2', async () => {
    const ids = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];
    const table = loadRegionTable();
    const targets = await Promise.all(ids.map((id) => echoServer(`[${id}]`)));
    const wan = newWan({ handshake: false });
    const scale = 0.25;
    const mesh = await buildMesh(wan, {
      regions: ids.map((id, i) => ({ id, target: targets[i]!.target })),
      scale,
    });
    assert.equal(wan.stats().length, 6);
    const routes = meshRoutes(mesh);
    assert.deepEqual(Object.keys(routes['us-east-1']!).sort(), ['ap-northeast-1', 'eu-west-1']);
    assert.match(routes['eu-west-1']!['us-east-1']!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(
      wan.path('us-east-1', 'eu-west-1').delayMs,
      (table.rttMs('us-east-1', 'eu-west-1') / 2) * scale,
    );

    const c = new Client(mesh['us-east-1']!['eu-west-1']!);
    await waitFor(() => c.received.toString() === '[eu-west-1]');
    const want = table.rttMs('us-east-1', 'eu-west-1') * scale;
    await someAttempt(3, async () => {
      const rtt = median([await c.ping('1'), await c.ping('2'), await c.ping('3')]);
      assert.ok(rtt >= want - 1, `rtt ${rtt}, want ${want}`);
      return over('rtt', rtt, want + SLACK_MS);
    });

    wan.isolate('eu-west-1', 'cut');
    assert.deepEqual(
      wan
        .stats()
        .map((s) => [s.from, s.to, s.state].join(' '))
        .sort(),
      [
        'ap-northeast-1 eu-west-1 cut',
        'ap-northeast-1 us-east-1 up',
        'eu-west-1 ap-northeast-1 cut',
        'eu-west-1 us-east-1 cut',
        'us-east-1 ap-northeast-1 up',
        'us-east-1 eu-west-1 cut',
      ],
    );
    await waitFor(() => c.closed);
    wan.healAll();
    assert.ok(wan.stats().every((s) => s.state === 'up'));
  });
});
