import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { request } from 'undici';
import { createHttp1Server, type Http1Request } from './http1.js';

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
      'POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx',
    );
    assert.match(both, /^HTTP\/1\.1 400 /);
    assert.match(both, /connection: close/);
    assert.match(await raw(port, `GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await raw(port, `PUT / HTTP/1.1\r\nContent-Length: 65\r\n\r\n`), /^HTTP\/1\.1 413 /);
    assert.match(await raw(port, 'NOT HTTP\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'GET / HTTP/2.0\r\n\r\n'), /^HTTP\/1\.1 505 /);
    const before = seen.length;
    await raw(port, '\x00\x01\x02garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n');
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
      s.end('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n', 'latin1');
    });
    assert.match(out, /GET \/a -HTTP\/1\.1 200 OK[\s\S]*GET \/b -$/);
  });

  it('HTTP/1.0 closes unless asked to keep alive', async () => {
    const out = await raw(port, 'GET /old HTTP/1.0\r\n\r\n');
    assert.match(out, /connection: close\r\n\r\nGET \/old -$/);
  });
});
