/** The edge's upstream HTTP/1.1 pool against a raw TCP server that answers with scripted bytes. */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { H1Pool, type UpstreamAnswer } from './h1pool.js';

/** Each request head gets the answer `script` returns for it (written as given, maybe in pieces). */
interface Scripted {
  server: Server;
  origin: string;
  heads: string[];
  sockets: Set<Socket>;
  script: (head: string) => string[] | 'hang' | 'close';
}

/** A piece that ends the connection (the server's FIN) instead of writing. */
const END = '\0end';

/** Resolves once `check` holds, polling; fails after `timeoutMs`. */
async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function scripted(): Promise<Scripted> {
  const s: Scripted = {
    server: createServer(),
    origin: '',
    heads: [],
    sockets: new Set(),
    script: () => ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'],
  };
  s.server.on('connection', (sock) => {
    s.sockets.add(sock);
    sock.on('close', () => s.sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const cl = /content-length: (\d+)/i.exec(head);
        const total = end + 4 + (cl ? Number(cl[1]) : 0);
        if (buf.length < total) return;
        const whole = buf.slice(0, total);
        buf = buf.slice(total);
        s.heads.push(whole);
        const answer = s.script(whole);
        if (answer === 'hang') continue;
        if (answer === 'close') {
          sock.destroy();
          return;
        }
        // Pieces go out on separate ticks, so the pool sees split reads.
        let i = 0;
        const next = (): void => {
          if (i < answer.length && !sock.destroyed) {
            const piece = answer[i++]!;
            if (piece === END) sock.end();
            else sock.write(piece, 'latin1');
            setImmediate(next);
          }
        };
        next();
      }
    });
  });
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
  s.origin = `http://127.0.0.1:${(s.server.address() as { port: number }).port}`;
  return s;
}

const OPTS = { connections: 2, keepAliveTimeoutMs: 30_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
const get = (path = '/x') => ({ method: 'GET', path, headers: {}, body: undefined });

describe('H1Pool', () => {
  let up: Scripted;
  let pool: H1Pool;
  before(async () => {
    up = await scripted();
    pool = new H1Pool(up.origin, OPTS);
  });
  after(async () => {
    await pool.destroy();
    for (const s of up.sockets) s.destroy();
    await new Promise((r) => up.server.close(r));
  });

  it('reads a Content-Length answer, split across reads, and keeps the socket alive', async () => {
    up.script = () => [
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Len',
      'gth: 11\r\nConnection: keep-alive\r\n\r\n{"a":',
      '"bcd"}',
    ];
    const a: UpstreamAnswer = await pool.request(get());
    assert.equal(a.status, 200);
    assert.equal(a.body.toString(), '{"a":"bcd"}');
    assert.equal(a.headers['content-type'], 'application/json');
    assert.deepEqual(a.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(a.contentLength, 11);
    assert.equal(
      a.headerLines,
      'content-type: application/json\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n',
      'framing and hop-by-hop headers are not forwarded',
    );
    const before = up.sockets.size;
    await pool.request(get());
    assert.equal(up.sockets.size, before, 'the second request reused the socket');
  });

  it('decodes chunked answers, with extensions and trailers', async () => {
    up.script = () => [
      'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n',
      '4;ext=1\r\nWiki\r\n5\r\npedia\r',
      '\n0\r\nX-Trailer: t\r\n\r\n',
    ];
    const a = await pool.request(get());
    assert.equal(a.status, 201);
    assert.equal(a.body.toString(), 'Wikipedia');
    assert.equal(a.headerLines, '', 'transfer-encoding is not forwarded');
    up.script = () => ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'];
    assert.equal((await pool.request(get())).body.length, 0);
  });

  it('skips 1xx interim answers, reads close-delimited bodies and empty ones', async () => {
    up.script = () => ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx'];
    assert.equal((await pool.request(get())).body.toString(), 'x');
    up.script = () => ['HTTP/1.1 204 No Content\r\n\r\n'];
    assert.equal((await pool.request(get())).status, 204);
    up.script = (head) =>
      head.startsWith('HEAD') ? ['HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n'] : ['bad'];
    const h = await pool.request({ method: 'HEAD', path: '/', headers: {}, body: undefined });
    assert.equal(h.body.length, 0);
    assert.equal(h.contentLength, 99);
    up.script = () => ['HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil ', 'the end', END];
    assert.equal((await pool.request(get())).body.toString(), 'until the end');
  });

  it('writes the request head, Host and the body with its length', async () => {
    up.script = () => ['HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'];
    await pool.request({
      method: 'PUT',
      path: '/v1/settings/x?y=1',
      headers: { 'x-a': 'b', 'x-list': ['1', '2'] },
      body: Buffer.from('{"v":1}'),
    });
    const head = up.heads.at(-1)!;
    assert.match(head, /^PUT \/v1\/settings\/x\?y=1 HTTP\/1\.1\r\n/);
    assert.match(head, new RegExp(`\r\nhost: ${new URL(up.origin).host}\r\n`));
    assert.match(head, /\r\nx-a: b\r\nx-list: 1\r\nx-list: 2\r\n/);
    assert.match(head, /\r\ncontent-length: 7\r\n\r\n\{"v":1\}$/);
    await assert.rejects(
      pool.request({ method: 'GET', path: '/', headers: { 'x-bad': 'a\r\nb' }, body: undefined }),
      (e: Error & { code?: string }) => e.code === 'UPSTREAM_INVALID_HEADER',
    );
  });

  it('fails malformed answers, and an idempotent request on a stale keep-alive socket goes again', async () => {
    up.script = () => ['HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxyz'];
    await assert.rejects(
      pool.request(get()),
      (e: Error & { code?: string }) => e.code === 'UPSTREAM_BAD_ANSWER',
    );
    up.script = () => ['garbage\r\n\r\n'];
    await assert.rejects(
      pool.request(get()),
      (e: Error & { code?: string }) => e.code === 'UPSTREAM_BAD_ANSWER',
    );
    // A warm socket, then the server drops the connection on the next request without answering.
    up.script = () => ['HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'];
    await pool.request(get());
    let n = 0;
    up.script = () => (n++ === 0 ? 'close' : ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok']);
    assert.equal((await pool.request(get())).body.toString(), 'ok');
    // A POST without a key is not sent twice.
    await pool.request(get());
    n = 0;
    await assert.rejects(pool.request({ method: 'POST', path: '/', headers: {}, body: undefined }));
  });

  it('cancels requests on a socket and in the queue; times out a silent upstream', async () => {
    up.script = () => 'hang';
    const reqs = [0, 1, 2].map(() => {
      const cancel = { cancel: (_: Error) => undefined };
      return { cancel, p: pool.request(get(), cancel) };
    });
    // Two on sockets (connections: 2), one queued.
    const seen = up.heads.length;
    await until('two requests at the server', () => up.heads.length >= seen + 2);
    for (const r of reqs) r.cancel.cancel(new Error('ejected'));
    for (const r of reqs) await assert.rejects(r.p, /ejected/);
    const quick = new H1Pool(up.origin, { ...OPTS, headersTimeoutMs: 100 });
    try {
      await assert.rejects(
        quick.request(get()),
        (e: Error & { code?: string }) => e.code === 'UPSTREAM_HEADERS_TIMEOUT',
      );
    } finally {
      await quick.destroy();
    }
  });

  it('gives a request its own answer budget: a read asked to wait outlives the pool timeout', async () => {
    up.script = () => 'hang';
    const quick = new H1Pool(up.origin, { ...OPTS, headersTimeoutMs: 100 });
    try {
      const seen = up.heads.length;
      const plain = quick.request(get('/plain'));
      const waiting = new Promise<UpstreamAnswer>((resolve, reject) =>
        quick.sendRaw(
          'GET',
          '/waits',
          '',
          undefined,
          false,
          {
            onUpstream: (err, answer) => (err ? reject(err) : resolve(answer!)),
          },
          60_000,
        ),
      );
      await until('both requests at the server', () => up.heads.length >= seen + 2);
      // The plain request times out at the pool's budget; only then does the region answer.
      await assert.rejects(plain, (e: Error & { code?: string }) => e.code === 'UPSTREAM_HEADERS_TIMEOUT');
      for (const sock of up.sockets) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok', 'latin1');
      const a = await waiting;
      assert.equal(a.status, 200);
      assert.equal(a.body.toString(), 'ok');
    } finally {
      await quick.destroy();
    }
  });

  it('reports a refused connection with its code', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const p = new H1Pool(`http://127.0.0.1:${port}`, OPTS);
    try {
      await assert.rejects(p.request(get()), (e: Error & { code?: string }) => e.code === 'ECONNREFUSED');
    } finally {
      await p.destroy();
    }
  });
});
