/**
 * What a region node does with a request outside its limits or outside what it speaks: each is
 * refused in the contract's shape before anything is stored, and never fails anyone else's write.
 * Real nodes, raw bytes where an HTTP client would not send them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeToken } from '../src/core/version.js';
import { contractCode, head, rawRequest } from './region-raw-http.js';
import { type CallResult, type Cluster, call, eventually, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';

function code(r: CallResult): string | undefined {
  return contractCode(r.text);
}

function seqOf(r: CallResult, origin: string): number {
  const token = r.headers['meridian-version']!;
  return (JSON.parse(Buffer.from(token, 'base64url').toString()) as Record<string, number>)[origin] ?? 0;
}

const deepArray = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

describe('region node: input limits and low-level errors', { timeout: 180_000 }, () => {
  let c: Cluster;
  const us = () => c.url(US);
  const put = (path: string, raw: string, headers: Record<string, string> = {}) =>
    call(us(), 'PUT', path, { raw, headers: { 'content-type': 'application/json', ...headers } });

  before(async () => {
    // In this process: the __proto__ test looks at this process's Object.prototype, which the
    // nodes share. Short request timeouts so the slow-client tests end quickly; a short max wait.
    c = await startCluster({
      store: 'memory',
      mode: 'inprocess',
      node: { maxWaitMs: 300, limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000 } },
    });
  });
  after(async () => {
    await c?.stop();
  });

  it('JSON nested deeper than 64 is refused (400 too_deep) and not stored; 64 is stored and reads back', async () => {
    for (const [name, body] of [
      ['4,150 arrays', deepArray(4150)],
      ['10,000 objects', deepObject(10_000)],
      ['65 arrays', deepArray(65)],
      ['deep inside a member', `{"ok":1,"x":${deepArray(100)}}`],
    ] as const) {
      const r = await put('/v1/settings/deep', body);
      assert.equal(r.status, 400, `${name}: ${r.text.slice(0, 200)}`);
      assert.equal(code(r), 'too_deep', name);
    }
    assert.equal((await call(us(), 'GET', '/v1/settings/deep')).status, 404, 'nothing stored');
    const ok = await put('/v1/settings/deep', deepArray(64));
    assert.equal(ok.status, 200, ok.text);
    const back = await call(us(), 'GET', '/v1/settings/deep');
    assert.equal(back.status, 200);
    assert.equal(JSON.stringify((back.json as { value: unknown }).value), deepArray(64));
    // Brackets inside a string are text, not nesting.
    const inString = await put('/v1/settings/brackets', JSON.stringify({ s: '['.repeat(5000) }));
    assert.equal(inString.status, 200, inString.text);
    // And the peers get the deepest allowed value too: the stream out of this region carries it.
    await eventually('the 64-deep value replicates', async () => {
      const r = await call(c.url(EU), 'GET', '/v1/settings/deep');
      return r.status === 200;
    });
  });

  it('deep bodies among normal writes fail alone', async () => {
    const writes = Array.from({ length: 40 }, (_, i) =>
      i % 8 === 0
        ? put(`/v1/settings/mix-${i}`, deepArray(10_000))
        : put(`/v1/settings/mix-${i}`, `{"i":${i}}`),
    );
    const answers = await Promise.all(writes);
    for (const [i, r] of answers.entries()) {
      if (i % 8 === 0) assert.equal(code(r), 'too_deep', `write ${i}`);
      else assert.equal(r.status, 200, `write ${i}: ${r.text.slice(0, 200)}`);
    }
    for (let i = 1; i < 40; i += 8) {
      const r = await call(us(), 'GET', `/v1/settings/mix-${i}`);
      assert.deepEqual((r.json as { value: unknown }).value, { i });
    }
  });

  it('members per object, array length and string length over the limits are 413 too_large', async () => {
    const manyKeys = JSON.stringify(Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, i])));
    const longArray = JSON.stringify(Array.from({ length: 10_001 }, () => 0));
    const longString = JSON.stringify({ s: 'x'.repeat(256 * 1024 + 1) });
    const longName = JSON.stringify({ ['n'.repeat(256 * 1024 + 1)]: 1 });
    for (const [name, body] of [
      ['1,001 members', manyKeys],
      ['10,001 elements', longArray],
      ['a 256 KiB + 1 string', longString],
      ['a 256 KiB + 1 member name', longName],
    ] as const) {
      const r = await put('/v1/settings/big', body);
      assert.equal(r.status, 413, `${name}: ${r.text.slice(0, 200)}`);
      assert.equal(code(r), 'too_large', name);
    }
    assert.equal((await call(us(), 'GET', '/v1/settings/big')).status, 404, 'nothing stored');
    const atLimit = JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i])));
    assert.equal((await put('/v1/settings/big', atLimit)).status, 200);
  });

  it('headers over 16 KiB, a 100 KB key, a bad percent-encoding: contract-shaped 431 and 400', async () => {
    const big = await rawRequest(us(), head('GET', '/v1/settings/x', { 'x-pad': 'p'.repeat(17 * 1024) }));
    assert.equal(big.status, 431, big.raw.slice(0, 300));
    assert.equal(contractCode(big.body), 'headers_too_large');
    const longKey = await rawRequest(us(), head('PUT', `/v1/settings/${'k'.repeat(100_000)}`, {}, '1'));
    assert.equal(longKey.status, 431, longKey.raw.slice(0, 300));
    assert.equal(contractCode(longKey.body), 'headers_too_large');
    const badUrl = await call(us(), 'GET', '/v1/settings/%FF%FE');
    assert.equal(badUrl.status, 400, badUrl.text);
    assert.equal(code(badUrl), 'bad_request');
    const badPut = await call(us(), 'PUT', '/v1/settings/%FF%FE', { body: 1 });
    assert.equal(badPut.status, 400, badPut.text);
    assert.ok(code(badPut));
    const badLength = await rawRequest(
      us(),
      'PUT /v1/settings/x HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1x\r\n\r\n1',
    );
    assert.equal(badLength.status, 400, badLength.raw.slice(0, 300));
    assert.equal(contractCode(badLength.body), 'bad_request');
  });

  it('a request head or body that does not arrive in time: 408 in the contract shape', async () => {
    // Slowloris: a byte every 300 ms never finishes the head within the node's 1 s.
    const slowHead = await rawRequest(
      us(),
      ['GET /v1/settings/x HTTP/1.1\r\n', ...Array.from({ length: 20 }, (_, i) => `x-${i}: 1\r\n`)],
      { gapMs: 300 },
    );
    assert.equal(slowHead.status, 408, slowHead.raw.slice(0, 300));
    assert.equal(contractCode(slowHead.body), 'request_timeout');
    // A body promised and never sent.
    const slowBody = await rawRequest(
      us(),
      'PUT /v1/settings/slow HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":',
    );
    assert.equal(slowBody.status, 408, slowBody.raw.slice(0, 300));
    assert.equal(contractCode(slowBody.body), 'request_timeout');
    assert.equal((await call(us(), 'GET', '/v1/settings/slow')).status, 404);
  });

  it('parse errors answer in the contract shape, never fastify’s', async () => {
    for (const [name, r, status, want] of [
      ['malformed JSON', await put('/v1/settings/p', '{"a":'), 400, 'bad_json'],
      [
        'not JSON',
        await put('/v1/settings/p', 'hi', { 'content-type': 'text/plain' }),
        415,
        'unsupported_media_type',
      ],
      [
        'no content type',
        await call(us(), 'PUT', '/v1/settings/p', { raw: '1' }),
        415,
        'unsupported_media_type',
      ],
      ['over 1 MiB', await put('/v1/settings/p', `"${'x'.repeat(1024 * 1024)}"`), 413, 'too_large'],
      [
        'gzip body',
        await put('/v1/settings/p', '1', { 'content-encoding': 'gzip' }),
        415,
        'unsupported_media_type',
      ],
    ] as const) {
      assert.equal(r.status, status, `${name}: ${r.text.slice(0, 200)}`);
      assert.equal(code(r), want, name);
      assert.equal((r.json as Record<string, unknown>).statusCode, undefined, name);
    }
  });

  it('Transfer-Encoding other than chunked alone is refused (501), and nothing is stored', async () => {
    const r = await rawRequest(
      us(),
      'PUT /v1/settings/te HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
        'transfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n1\r\n1\r\n0\r\n\r\n',
    );
    assert.equal(r.status, 501, r.raw.slice(0, 300));
    assert.equal(contractCode(r.body), 'not_implemented');
    assert.equal((await call(us(), 'GET', '/v1/settings/te')).status, 404);
    // Plain chunked is fine.
    const ok = await rawRequest(
      us(),
      'PUT /v1/settings/te HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
        'transfer-encoding: chunked\r\nconnection: close\r\n\r\n1\r\n7\r\n0\r\n\r\n',
    );
    assert.equal(ok.status, 200, ok.raw.slice(0, 300));
  });

  it('DELETE and GET with Content-Type: application/json and no body work', async () => {
    assert.equal((await put('/v1/settings/del', '"v"')).status, 200);
    const json = { 'content-type': 'application/json' };
    const g = await rawRequest(us(), head('GET', '/v1/settings/del', { ...json, 'content-length': '0' }));
    assert.equal(g.status, 200, g.raw.slice(0, 300));
    const d = await rawRequest(us(), head('DELETE', '/v1/settings/del', { ...json, 'content-length': '0' }));
    assert.equal(d.status, 200, d.raw.slice(0, 300));
    const d2 = await call(us(), 'DELETE', '/v1/settings/del', { headers: json });
    assert.equal(d2.status, 200, d2.text);
    assert.equal((await call(us(), 'GET', '/v1/settings/del')).status, 404);
  });

  it('a __proto__ member is data: stored, read back and replicated as sent, with no prototype touched', async () => {
    const body = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"a":1}';
    const r = await put('/v1/settings/proto', body);
    assert.equal(r.status, 200, r.text);
    for (const region of [US, EU]) {
      const back = await eventually(`the document in ${region}`, async () => {
        const g = await call(c.url(region), 'GET', '/v1/settings/proto');
        return g.status === 200 ? g : undefined;
      });
      // Compared as text: JSON.parse in this test defines __proto__ as own data, like the node does.
      const value = (JSON.parse(back.text) as { value: Record<string, unknown> }).value;
      assert.deepEqual(Object.keys(value), ['__proto__', 'constructor', 'a'], region);
      assert.equal(JSON.stringify(value), body, region);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');
    assert.equal(Object.getPrototypeOf({}), Object.prototype);
  });

  it('Meridian-Max-Wait-Ms beyond the node’s maxWaitMs is clamped to it: the 503 comes, naming the origin', async () => {
    const token = encodeToken({ [EU]: 10_000_000 });
    const r = await call(us(), 'GET', '/v1/settings/x', {
      headers: { 'meridian-min-version': token, 'meridian-max-wait-ms': '60000' },
    });
    assert.equal(r.status, 503, r.text);
    assert.equal(code(r), 'not_caught_up');
    assert.equal(r.headers['meridian-replay'], `region=${EU}`);
  });

  it('a token naming a region not in the cluster is 400 bad_token', async () => {
    const unknown = encodeToken({ 'mars-north-1': 3 });
    for (const header of ['meridian-min-version', 'meridian-version']) {
      const r = await call(us(), 'GET', '/v1/settings/tok', { headers: { [header]: unknown } });
      assert.equal(r.status, 400, `${header}: ${r.text}`);
      assert.equal(code(r), 'bad_token', header);
      assert.equal(r.headers['meridian-replay'], undefined, header);
    }
  });

  it('a change this region never issued: 503 with no replay hint, not a hint back to itself', async () => {
    const w = await put('/v1/settings/tok', '1');
    const never = encodeToken({ [US]: seqOf(w, US) + 1_000_000 });
    const r = await call(us(), 'GET', '/v1/settings/tok', { headers: { 'meridian-min-version': never } });
    assert.equal(r.status, 503, r.text);
    assert.equal(code(r), 'not_caught_up');
    assert.equal(r.headers['meridian-replay'], undefined, 'no region can serve it');
    assert.equal((r.json as { error: { replayRegion?: string } }).error.replayRegion, undefined);
    // Elsewhere, the hint names the origin, the only region that could have it.
    const e = await call(c.url(EU), 'GET', '/v1/settings/tok', {
      headers: { 'meridian-min-version': never },
    });
    assert.equal(e.status, 503, e.text);
    assert.equal(e.headers['meridian-replay'], `region=${US}`);
    // The origin's own tokens still work.
    const ok = await call(us(), 'GET', '/v1/settings/tok', {
      headers: { 'meridian-min-version': w.headers['meridian-version']! },
    });
    assert.equal(ok.status, 200, ok.text);
  });
});
