import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { request } from 'undici';
import { createHttp1Server, type Http1Options, type Http1Request } from './http1.js';

/** Writes raw bytes, reads until the server closes or `until` matches what was read. */
function raw(port: number, bytes: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no complete answer; got ${JSON.stringify(out)}`));
    }, 5000);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    s.on('data', (d) => {
      out += d.toString('latin1');
      if (until?.test(out)) done();
    });
    s.on('close', done);
    s.on('error', reject);
    s.write(bytes, 'latin1');
  });
}

describe('createHttp1Server', () => {
  const seen: Http1Request[] = [];
  let port = 0;
  const server = createHttp1Server(
    { maxHeadBytes: 1024, maxBodyBytes: 64, keepAliveTimeoutMs: 5000 },
    (req, res) => {
      seen.push(req);
      res.send(
        200,
        { 'content-type': 'text/plain', 'x-method': req.method },
        `${req.method} ${req.url} ${req.body?.toString() ?? '-'}`,
      );
    },
  );

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('serves a real client with keep-alive and bodies', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(`http://127.0.0.1:${port}/v1/a/${i}`, { method: 'PUT', body: `{"i":${i}}` });
      assert.equal(r.statusCode, 200);
      assert.equal(await r.body.text(), `PUT /v1/a/${i} {"i":${i}}`);
    }
  });

  it('answers pipelined requests in order, HEAD without a body', async () => {
    const out = await raw(
      port,
      'GET /one HTTP/1.1\r\nHost: x\r\n\r\nHEAD /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const answers = out.split('HTTP/1.1 200 OK').slice(1);
    assert.equal(answers.length, 3);
    assert.match(answers[0]!, /GET \/one -$/);
    assert.match(answers[1]!, /x-method: HEAD\r\n\r\n$/);
    assert.match(answers[2]!, /connection: close\r\n\r\nGET \/three -$/);
  });

  it('decodes chunked bodies and honours Expect: 100-continue', async () => {
    const chunked = await raw(
      port,
      'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n',
    );
    assert.match(chunked, /POST \/c abcde$/);
    const s = connect(port, '127.0.0.1');
    const got = await new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (d) => {
        out += d.toString();
        if (out === 'HTTP/1.1 100 Continue\r\n\r\n') s.write('hi');
        if (out.endsWith('PUT /e hi')) resolve(out);
      });
      s.write('PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
    });
    s.destroy();
    assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
  });

  it('refuses ambiguous framing, oversized heads and bodies, and garbage, and closes', async () => {
    const both = await raw(
      port,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx',
    );
    assert.match(both, /^HTTP\/1\.1 400 /);
    assert.match(both, /connection: close/);
    assert.match(await raw(port, `GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(
      await raw(port, `PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n`),
      /^HTTP\/1\.1 413 /,
    );
    assert.match(await raw(port, 'NOT HTTP\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'GET / HTTP/2.0\r\n\r\n'), /^HTTP\/1\.1 505 /);
    const before = seen.length;
    await raw(port, '\x00\x01\x02garbage\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(seen.length, before, 'nothing after a malformed request is served');
  });

  it('survives random bytes: every connection is answered or closed, and the server keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
          fc
            .tuple(
              fc.constantFrom('GET', 'PUT', 'POST', 'X'),
              fc.string({ maxLength: 40 }),
              fc.string({ maxLength: 80 }),
            )
            .map(([m, p, h]) => `${m} /${p} HTTP/1.1\r\n${h}\r\nConnection: close\r\n\r\n`),
        ),
        async (bytes) => {
          // Close our side after writing, so an incomplete request ends the connection too.
          await new Promise<void>((resolve) => {
            const s = connect(port, '127.0.0.1');
            s.on('data', () => undefined);
            s.on('close', () => resolve());
            s.on('error', () => resolve());
            s.end(bytes, 'latin1');
          });
        },
      ),
      { numRuns: 150 },
    );
    const r = await request(`http://127.0.0.1:${port}/still`, { method: 'GET' });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'GET /still -');
  });

  it('answers a client that shuts its side right after sending', async () => {
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
      });
      s.on('close', () => resolve(got));
      s.end('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1');
    });
    assert.match(out, /GET \/a -HTTP\/1\.1 200 OK[\s\S]*GET \/b -$/);
  });

  it('HTTP/1.0 closes unless asked to keep alive', async () => {
    const out = await raw(port, 'GET /old HTTP/1.0\r\n\r\n');
    assert.match(out, /connection: close\r\n\r\nGET \/old -$/);
  });
});

/** A server with `options` answering 200 with the request's method, target and body. */
async function serve(options: Partial<Http1Options>): Promise<{ port: number; close(): Promise<void> }> {
  const server = createHttp1Server(options, (req, res) =>
    res.send(
      200,
      { 'content-type': 'text/plain' },
      `${req.method} ${req.url} ${req.body?.toString() ?? '-'}`,
    ),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Status and error code of a refusal, checking it is in the contract's shape and closes the connection. */
function refusal(answer: string): { status: number; code: string; message: string } {
  const m = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(answer);
  assert.ok(m, `not an HTTP answer: ${JSON.stringify(answer)}`);
  assert.match(m[2]!, /connection: close/);
  const body = JSON.parse(m[3]!) as { error: { code: string; message: string } };
  return { status: Number(m[1]), code: body.error.code, message: body.error.message };
}

describe('createHttp1Server limits (issue 10 rows 5 and 8)', () => {
  it('refuses a huge chunk extension sent in many packets at its bound, having read only a bounded part of it', {
    timeout: 60_000,
  }, async () => {
    const srv = await serve({ maxChunkLineBytes: 4096, maxBodyBytes: 1024 * 1024, headTimeoutMs: 60_000 });
    try {
      // 64 MB of `1;aaaa…` in 16 KiB packets, each written once the previous one left: the
      // server must answer while the client is still sending, not after the line ends.
      const total = 64 * 1024 * 1024;
      const packet = Buffer.alloc(16 * 1024, 'a');
      const { answer, written } = await new Promise<{ answer: string; written: number }>(
        (resolve, reject) => {
          const s = connect(srv.port, '127.0.0.1');
          let answer = '';
          let written = 0;
          let done = false;
          const finish = (): void => {
            if (done) return;
            done = true;
            s.destroy();
            resolve({ answer, written });
          };
          s.on('data', (d) => {
            answer += d.toString('latin1');
          });
          s.on('close', finish);
          s.on('error', () => finish());
          const next = (): void => {
            if (done || answer.length > 0 || written >= total) {
              if (written >= total) reject(new Error('the whole 64 MB extension was read without an answer'));
              return;
            }
            written += packet.length;
            s.write(packet, () => setImmediate(next));
          };
          s.write('POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;', 'latin1', next);
        },
      );
      const r = refusal(answer);
      assert.equal(r.status, 400);
      assert.equal(r.code, 'bad_request');
      assert.match(r.message, /chunk-size line over 4096 bytes/);
      // What the client got in before the answer: the bound plus what socket buffers hold, far
      // from the 64 MB it meant to send (the server paused reading once it answered).
      assert.ok(written < 16 * 1024 * 1024, `the client wrote ${written} bytes before the answer`);
      const after = await raw(srv.port, 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.match(after, /GET \/next -$/, 'the server keeps serving');
    } finally {
      await srv.close();
    }
  });

  it('closes a request head trickled a byte at a time with 408 at the head deadline', {
    timeout: 60_000,
  }, async () => {
    const srv = await serve({ headTimeoutMs: 300 });
    try {
      const answer = await new Promise<string>((resolve) => {
        const s = connect(srv.port, '127.0.0.1');
        let out = '';
        s.on('data', (d) => {
          out += d.toString('latin1');
        });
        // A byte every 20 ms: each byte would re-arm a per-byte idle timer; the head deadline stays put.
        const head = `GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(10_000)}`;
        let i = 0;
        const timer = setInterval(() => {
          if (i < head.length && !s.destroyed) s.write(head[i++]!);
        }, 20);
        s.on('error', () => undefined);
        s.on('close', () => {
          clearInterval(timer);
          resolve(out);
        });
      });
      const r = refusal(answer);
      assert.equal(r.status, 408);
      assert.equal(r.code, 'request_timeout');
    } finally {
      await srv.close();
    }
  });

  it('closes a stalled body with 408 at the body deadline', async () => {
    const srv = await serve({ bodyTimeoutMs: 300 });
    try {
      const answer = await raw(srv.port, 'PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
      const r = refusal(answer);
      assert.equal(r.status, 408);
      assert.match(r.message, /body/);
    } finally {
      await srv.close();
    }
  });

  it('answers what it refuses instead of hanging or accepting: bare LF, a chunk without CRLF, Host, Expect', async () => {
    const srv = await serve({});
    try {
      const cases: [string, string, number][] = [
        ['bare LF line endings', 'GET / HTTP/1.1\nHost: x\n\n', 400],
        ['bare LF after the request line', 'GET / HTTP/1.1\nHost: x\r\n\r\n', 400],
        ['CR without LF', 'GET / HTTP/1.1\rHost: x\r\n\r\n', 400],
        [
          'a chunk not followed by CRLF',
          'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n',
          400,
        ],
        [
          'a chunk followed by LF only',
          'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n',
          400,
        ],
        ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400],
        ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
        ['an unknown expectation', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: 999-foo\r\n\r\n', 417],
        [
          'Transfer-Encoding in HTTP/1.0',
          'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
          400,
        ],
        ['an unknown method', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 501],
        // Fuzzing seed 1207841313 (case 472): served as a plain request while llhttp refuses it.
        [
          'CONNECT (a tunnel) with an origin-form target',
          'CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
          501,
        ],
        ['CONNECT with an authority-form target', 'CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n', 501],
        ['a vertical tab trimmed into a value', 'GET / HTTP/1.1\r\nHost: x\r\nX: \x0ba\r\n\r\n', 400],
      ];
      for (const [what, bytes, status] of cases) {
        const r = refusal(await raw(srv.port, bytes));
        assert.equal(r.status, status, `${what}: ${r.message}`);
      }
      // HTTP/1.0 needs no Host; a well-formed 1.1 request with one is served.
      assert.match(await raw(srv.port, 'GET /old HTTP/1.0\r\n\r\n'), /GET \/old -$/);
      assert.match(
        await raw(
          srv.port,
          'GET /ok HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nConnection: close\r\n\r\n',
        ),
        /GET \/ok -$/,
      );
    } finally {
      await srv.close();
    }
  });

  it('bounds header count, header line and request line', async () => {
    const srv = await serve({ maxHeaderCount: 5, maxHeaderLineBytes: 200, maxHeadBytes: 4096 });
    try {
      const many = Array.from({ length: 6 }, (_, i) => `X-${i}: y\r\n`).join('');
      assert.equal(refusal(await raw(srv.port, `GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n`)).status, 431);
      const line = `GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(300)}\r\n\r\n`;
      assert.equal(refusal(await raw(srv.port, line)).status, 431);
      const target = `GET /${'a'.repeat(300)} HTTP/1.1\r\nHost: x\r\n\r\n`;
      assert.equal(refusal(await raw(srv.port, target)).code, 'uri_too_long');
      const fine = Array.from({ length: 3 }, (_, i) => `X-${i}: y\r\n`).join('');
      assert.match(
        await raw(srv.port, `GET /ok HTTP/1.1\r\nHost: x\r\n${fine}Connection: close\r\n\r\n`),
        /GET \/ok -$/,
      );
    } finally {
      await srv.close();
    }
  });

  it('closes connections beyond the total cap at once', async () => {
    const srv = await serve({ maxConnections: 2, maxConnectionsPerClient: 100, headTimeoutMs: 10_000 });
    const open: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = connect(srv.port, '127.0.0.1');
        await new Promise((r) => s.once('connect', r));
        open.push(s);
      }
      // From another address, so the per-client cap is not what closes it.
      const third = await new Promise<string>((resolve) => {
        const s = connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        let out = '';
        s.on('data', (d) => {
          out += d.toString('latin1');
        });
        s.on('error', () => resolve(out));
        s.on('close', () => resolve(out));
        s.write('GET /3 HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      assert.equal(third, '');
    } finally {
      for (const s of open) s.destroy();
      await srv.close();
    }
  });

  it('closes connections from one client address beyond its cap at once, and serves the others', async () => {
    const srv = await serve({ maxConnectionsPerClient: 3, headTimeoutMs: 10_000 });
    const open: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = connect(srv.port, '127.0.0.1');
        await new Promise((r) => s.once('connect', r));
        open.push(s);
      }
      // The fourth is closed without an answer.
      const fourth = await raw(srv.port, 'GET /4 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(fourth, '');
      const first = open[0]!;
      const got = await new Promise<string>((resolve) => {
        let out = '';
        first.on('data', (d) => {
          out += d.toString('latin1');
          if (out.endsWith('GET /1 -')) resolve(out);
        });
        first.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      assert.match(got, /^HTTP\/1\.1 200 /);
      // Once one closes, a new connection is served again.
      first.destroy();
      await new Promise((r) => setTimeout(r, 50));
      assert.match(
        await raw(srv.port, 'GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        /GET \/again -$/,
      );
    } finally {
      for (const s of open) s.destroy();
      await srv.close();
    }
  });
});
