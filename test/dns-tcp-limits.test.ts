/**
 * GeoDNS over TCP against clients that hold connections: thousands of idle connections, a client
 * dripping a message a byte at a time, a client that never reads its answers. A normal TCP query
 * must still be answered, over real sockets.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { type DnsServer, startDnsServer } from '../src/servers/dns/index.js';
import { TCP_LIMITS } from '../src/servers/dns/tcp.js';
import { dig, dnsConfig, type FakeEdge, startEdges, waitFor } from './dns-helpers.js';
import { needTool } from './support/services.js';

function frame(msg: Buffer): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(msg.length);
  return Buffer.concat([p, msg]);
}

function query(id: number): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name: 'app.meridian.test', type: 'A' }],
  });
}

function open(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** One query over a fresh TCP connection from `localAddress`; resolves to the A records answered. */
async function tcpQuery(port: number, localAddress: string): Promise<string[]> {
  const s = await open(port, localAddress);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const res = packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          resolve((res.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : [])));
        }
      });
      s.on('close', () => reject(new Error('the server closed the connection without an answer')));
      s.write(frame(query(4242)));
    });
  } finally {
    s.destroy();
  }
}

const closed = (s: Socket) => s.destroyed || s.readyState === 'closed';

describe('GeoDNS TCP connection limits', () => {
  let edges: FakeEdge[] = [];
  let server: DnsServer;
  const sockets: Socket[] = [];
  // A long idle timeout: under load, opening 2,000 connections may take longer than the default
  // 10 s, and the caps (not the idle timer) are what the first test is about.
  const limits = { messageMs: 600, idleMs: 60_000 };
  before(async () => {
    edges = await startEdges();
    server = await startDnsServer(dnsConfig(edges), { tcp: limits });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await server?.close();
    await Promise.all(edges.map((e) => e.close()));
  });

  it('2,000 idle connections from one client and from many: a new TCP query is still answered', async (t) => {
    // 1,000 from one address (over the per-client cap) and 1,000 spread over 40 addresses (over the total cap).
    for (let batch = 0; batch < 20; batch++) {
      const made = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          open(server.port, batch < 10 ? '127.0.9.1' : `127.0.10.${1 + ((batch * 100 + i) % 40)}`),
        ),
      );
      sockets.push(...made);
    }
    // Accepting lags the client's connect: wait until the server has seen all 2,000.
    await waitFor(
      'the server to close the oldest idle connections',
      async () => (server.stats().tcpClosed.evicted >= 2000 - TCP_LIMITS.maxConnections ? true : undefined),
      20_000,
    );
    assert.equal(server.stats().tcpConnections, TCP_LIMITS.maxConnections);
    // The first ones opened are the ones closed: they are the oldest idle.
    await waitFor('the client to see the oldest closed', async () =>
      sockets.slice(0, 10).every(closed) ? true : undefined,
    );
    assert.ok(!closed(sockets[sockets.length - 1] as Socket), 'the newest connection is kept');
    // A new client, and the client holding the most connections, are both answered.
    assert.deepEqual(await tcpQuery(server.port, '127.0.2.9'), ['127.0.2.1']);
    const flooder = await tcpQuery(server.port, '127.0.9.1');
    assert.ok(flooder.length > 0 && flooder.every((a) => /^127\.0\.[123]\.1$/.test(a)), `${flooder}`);
    if (needTool(t, 'dig', 'dnsutils')) {
      const out = await dig(server.port, ['-b', '127.0.3.9', '+tcp', 'app.meridian.test', 'A', '+short']);
      assert.equal(out.trim(), '127.0.3.1');
    }
    const perClient = sockets.slice(0, 1000).filter((x) => !closed(x)).length;
    assert.ok(perClient <= TCP_LIMITS.maxPerClient, `${perClient} connections of one client still open`);
  });

  it('a message dripped a byte at a time is cut off at its deadline, not kept alive by each byte', async () => {
    const before0 = server.stats().tcpClosed.slowClosed;
    const s = await open(server.port, '127.0.11.1');
    sockets.push(s);
    const bytes = frame(query(1));
    // Each byte well inside the old 10 s idle timer, the whole message far beyond the deadline.
    let sent = 0;
    for (; sent < bytes.length - 1 && !closed(s); sent++) {
      s.write(bytes.subarray(sent, sent + 1));
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(closed(s), `still open after ${sent} bytes dripped over ${sent * 100} ms`);
    assert.ok(sent < bytes.length - 1);
    assert.equal(server.stats().tcpClosed.slowClosed, before0 + 1);
  });

  it('a connection may idle between messages, and each message gets a fresh deadline', async () => {
    const s = await open(server.port, '127.0.11.2');
    sockets.push(s);
    let answers = 0;
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        answers++;
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    for (let i = 0; i < 3; i++) {
      s.write(frame(query(i)));
      await waitFor(`answer ${i + 1}`, async () => (answers > i ? true : undefined));
      // Longer than a message's deadline, shorter than the idle timeout.
      await new Promise((r) => setTimeout(r, limits.messageMs * 1.5));
      assert.ok(!closed(s), 'an idle connection between messages is not cut at the message deadline');
    }
  });

  it('a client that sends queries and never reads the answers is cut off', async () => {
    const before0 = server.stats().tcpClosed.unreadClosed;
    const s = await open(server.port, '127.0.11.3');
    sockets.push(s);
    s.pause();
    const one = frame(query(9));
    const burst = Buffer.concat(Array.from({ length: 2000 }, () => one));
    for (let i = 0; i < 200 && !closed(s); i++) {
      if (!s.write(burst)) await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(
      'the server to cut the non-reading client',
      async () => (server.stats().tcpClosed.unreadClosed > before0 ? true : undefined),
      10_000,
    );
    assert.deepEqual(await tcpQuery(server.port, '127.0.2.9'), ['127.0.2.1']);
  });
});
