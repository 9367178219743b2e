/**
 * The lab's WAN runs on its own thread: a stall of the lab's main thread (a major GC, a burst of
 * supervisor or experiment work) must not stall the links. Issue 18: with the emulator on the main
 * thread, every edge lost every path at once whenever the lab's process paused for ~0.5 s.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import type { LabPlan } from '../plan.js';
import type { WanControl } from '../wan-control.js';
import { startWan } from '../wan-glue.js';

// An echo server and a client that sends a byte through the link every 10 ms and prints the wall
// time of every echo: both live in another process, so only the WAN is left in this one.
const PEER = `
const net = require('node:net');
const echo = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1', () => {
  process.stdout.write('port ' + echo.address().port + '\\n');
});
process.stdin.once('data', (d) => {
  const c = net.connect(Number(String(d).trim()), '127.0.0.1');
  c.on('data', () => process.stdout.write('echo ' + Date.now() + '\\n'));
  setInterval(() => c.write('x'), 10);
});
`;

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function lines(child: ChildProcessWithoutNullStreams, onLine: (l: string) => void): void {
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += String(d);
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

describe('the lab WAN thread', () => {
  let peer: ChildProcessWithoutNullStreams | undefined;
  let wan: WanControl | undefined;
  after(async () => {
    peer?.kill();
    await wan?.close();
  });

  it('relays bytes while the lab main thread is blocked', async () => {
    peer = spawn(process.execPath, ['-e', PEER]);
    const echoes: number[] = [];
    let echoPort: number | undefined;
    lines(peer, (l) => {
      const [what, n] = l.split(' ');
      if (what === 'port') echoPort = Number(n);
      else if (what === 'echo') echoes.push(Number(n));
    });
    while (echoPort === undefined) await new Promise((r) => setTimeout(r, 10));
    const listenPort = await freePort();
    const plan = {
      regions: [],
      links: [
        {
          from: 'a',
          to: 'b',
          listenHost: '127.0.0.1',
          listenPort,
          targetHost: '127.0.0.1',
          targetPort: echoPort,
          oneWayMs: 1,
        },
      ],
    } as unknown as LabPlan;
    wan = await startWan(plan);
    peer.stdin.write(`${listenPort}\n`);
    while (echoes.length < 5) await new Promise((r) => setTimeout(r, 10));

    // Block this thread the way a long GC pause or a synchronous burst of lab work does.
    const from = Date.now();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    const to = Date.now();
    await new Promise((r) => setTimeout(r, 100));

    const during = echoes.filter((t) => t > from + 50 && t < to - 50);
    assert.ok(
      during.length > 0,
      `no echo crossed the link while the main thread was blocked (${from}-${to})`,
    );
  });

  it('keeps the links state and refuses an unknown link', async () => {
    assert.ok(wan);
    wan.setCut('a', 'b', true);
    wan.setDelay('a', 'b', 7);
    assert.deepEqual(wan.links(), [{ from: 'a', to: 'b', oneWayMs: 7, cut: true }]);
    assert.throws(() => wan?.setCut('a', 'c', true), /no link a -> c/);
    assert.throws(() => wan?.setDelay('a', 'b', -1), /invalid one-way delay/);
  });
});
