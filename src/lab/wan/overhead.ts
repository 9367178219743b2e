/**
 * Measures what the WAN emulator itself costs at 0 ms delay, against a direct loopback
 * connection in the same run: round-trip latency, bulk throughput and connection setup.
 * Run: node --import tsx src/lab/wan/overhead.ts [roundTrips=5000] [megabytes=512]
 */
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WanEmulator } from './emulator.js';
import type { HostPort } from './link.js';

const roundTrips = Number(process.argv[2] ?? 5000);
const megabytes = Number(process.argv[3] ?? 512);

async function listen(server: Server): Promise<HostPort> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

function connect(at: HostPort): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ ...at, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function pingPong(at: HostPort): Promise<number[]> {
  const s = await connect(at);
  const out: number[] = [];
  const msg = Buffer.alloc(64, 1);
  for (let i = 0; i < roundTrips; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const on = (d: Buffer) => {
        got += d.length;
        if (got >= msg.length) {
          s.off('data', on);
          resolve();
        }
      };
      s.on('data', on);
      s.write(msg);
    });
    out.push((performance.now() - t0) * 1000);
  }
  s.destroy();
  return out;
}

async function bulk(at: HostPort, sink: { bytes: number }): Promise<number> {
  const s = await connect(at);
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const total = megabytes * chunk.length;
  sink.bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < megabytes; i++) {
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  while (sink.bytes < total) await new Promise((r) => setImmediate(r));
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return megabytes / secs;
}

async function setup(at: HostPort): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t0 = performance.now();
    const s = await connect(at);
    await new Promise<void>((resolve) => {
      s.once('data', () => resolve());
      s.write('x');
    });
    out.push((performance.now() - t0) * 1000);
    s.destroy();
  }
  return out;
}

async function main(): Promise<void> {
  const echo = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
  });
  const sink = { bytes: 0 };
  const drain = createServer((s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      sink.bytes += d.length;
    });
  });
  const echoAt = await listen(echo);
  const drainAt = await listen(drain);
  const wan = new WanEmulator({ handshake: true });
  const echoVia = await wan.addLink({ from: 'a', to: 'echo', target: echoAt, delayMs: 0 });
  const drainVia = await wan.addLink({ from: 'a', to: 'drain', target: drainAt, delayMs: 0 });

  const rows: { what: string; direct: number; wan: number; unit: string }[] = [];
  console.log(`round trips: ${roundTrips} x 64 B ...`);
  const pd = await pingPong(echoAt);
  const pw = await pingPong(echoVia);
  rows.push({ what: 'round trip p50', direct: pct(pd, 50), wan: pct(pw, 50), unit: 'µs' });
  rows.push({ what: 'round trip p99', direct: pct(pd, 99), wan: pct(pw, 99), unit: 'µs' });
  console.log('connection setup + first round trip: 500 ...');
  const sd = await setup(echoAt);
  const sw = await setup(echoVia);
  rows.push({ what: 'connect + first echo p50', direct: pct(sd, 50), wan: pct(sw, 50), unit: 'µs' });
  console.log(`bulk transfer: ${megabytes} MiB one way ...`);
  const bd = await bulk(drainAt, sink);
  const bw = await bulk(drainVia, sink);
  rows.push({ what: 'bulk throughput', direct: bd, wan: bw, unit: 'MiB/s' });

  console.log('\n| measure | direct | through emulator (0 ms) | ratio |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.what} (${r.unit}) | ${r.direct.toFixed(0)} | ${r.wan.toFixed(0)} | ${(r.wan / r.direct).toFixed(2)}x |`,
    );
  }
  await wan.close();
  echo.close();
  drain.close();
}

await main();
