/**
 * The edge's HTTP/1.1 parser against llhttp (node's own) on a corpus of tricky requests, request
 * smuggling classics first: the edge never serves a request llhttp refuses, nor reads different
 * requests from the same bytes (test/http-differential.ts). Well-formed requests are served by
 * both, so the corpus also shows the edge is not refusing everything.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { type Differential, edgeAcceptsMore, startDifferential } from './http-differential.js';

const H = 'Host: x\r\n';

/** [name, bytes, both must serve it] */
const CORPUS: [string, string, boolean][] = [
  ['plain GET', `GET /a?b=1 HTTP/1.1\r\n${H}\r\n`, true],
  ['PUT with a body', `PUT /v1/s/k HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, true],
  ['chunked body', `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, true],
  [
    'chunk extension',
    `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n`,
    true,
  ],
  ['pipelined pair', `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`, true],
  ['HTTP/1.0 without Host', 'GET /old HTTP/1.0\r\n\r\n', true],
  [
    'CL and TE',
    `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
    false,
  ],
  [
    'TE and CL',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`,
    false,
  ],
  ['TE gzip, chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, false],
  [
    'TE chunked, identity',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    false,
  ],
  ['TE identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\nabc`, false],
  [
    'two TE headers',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    false,
  ],
  [
    'TE with a space before the colon',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    false,
  ],
  ['TE xchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, false],
  ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', false],
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, false],
  ['obs-fold on TE', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`, false],
  ['space before colon', `GET / HTTP/1.1\r\nHost : x\r\n\r\n`, false],
  ['tab in a name', `GET / HTTP/1.1\r\n${H}X\tA: b\r\n\r\n`, false],
  ['negative Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, false],
  [
    'overflowing Content-Length',
    `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n`,
    false,
  ],
  ['Content-Length with a plus', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, false],
  ['Content-Length in hex', `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`, false],
  [
    'two different Content-Lengths',
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    false,
  ],
  ['Content-Length list', `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, false],
  ['NUL in a header value', `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`, false],
  ['NUL in the target', `GET /a\x00b HTTP/1.1\r\n${H}\r\n`, false],
  ['NUL in the method', `GE\x00T / HTTP/1.1\r\n${H}\r\n`, false],
  ['non-token method', `G(T / HTTP/1.1\r\n${H}\r\n`, false],
  ['unknown method', `FOO / HTTP/1.1\r\n${H}\r\n`, false],
  ['lower-case method', `get / HTTP/1.1\r\n${H}\r\n`, false],
  ['very long method', `${'G'.repeat(100_000)} / HTTP/1.1\r\n${H}\r\n`, false],
  ['very long URL', `GET /${'a'.repeat(100_000)} HTTP/1.1\r\n${H}\r\n`, false],
  ['very long header', `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(100_000)}\r\n\r\n`, false],
  ['bare LF', 'GET / HTTP/1.1\nHost: x\n\n', false],
  ['bare CR', 'GET / HTTP/1.1\rHost: x\r\r', false],
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', false],
  ['two Hosts', `GET / HTTP/1.1\r\n${H}Host: y\r\n\r\n`, false],
  [
    'chunk without CRLF',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n`,
    false,
  ],
  [
    'chunk size with a space',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n`,
    false,
  ],
  [
    'chunk size overflow',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1${'0'.repeat(20)}\r\nabc\r\n0\r\n\r\n`,
    false,
  ],
  [
    'negative chunk size',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`,
    false,
  ],
  [
    'chunk size 0x',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`,
    false,
  ],
  [
    'NUL in a chunk extension',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;a\x00\r\nabc\r\n0\r\n\r\n`,
    false,
  ],
  [
    'bare LF after a chunk size',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`,
    false,
  ],
  ['space in the target', `GET /a b HTTP/1.1\r\n${H}\r\n`, false],
  ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, false],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, false],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, false],
  ['lower-case version', `GET / http/1.1\r\n${H}\r\n`, false],
  ['unknown expectation', `GET / HTTP/1.1\r\n${H}Expect: 999-foo\r\n\r\n`, false],
  ['DEL in a value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, false],
  ['vertical tab before a value', `GET / HTTP/1.1\r\n${H}X: \x0bab\r\n\r\n`, false],
  ['header without a colon', `GET / HTTP/1.1\r\n${H}X\r\n\r\n`, false],
  ['empty header name', `GET / HTTP/1.1\r\n${H}: a\r\n\r\n`, false],
  ['CONNECT', `CONNECT x:443 HTTP/1.1\r\n${H}\r\n`, false],
  ['asterisk form', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, false],
  ['absolute form', `GET http://x/a?b HTTP/1.1\r\n${H}\r\n`, false],
  ['a body shorter than its length', `PUT / HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nabc`, false],
  [
    'a chunked body without its end',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`,
    false,
  ],
  [
    'trailer without a colon',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX\r\n\r\n`,
    false,
  ],
  [
    'well-formed trailer',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n`,
    false,
  ],
];

describe('edge HTTP/1.1 parser vs llhttp', () => {
  let diff: Differential;

  before(async () => {
    diff = await startDifferential();
  });
  after(async () => {
    await diff.close();
  });

  it('never serves what llhttp refuses, on the smuggling corpus', async () => {
    const problems: string[] = [];
    for (const [name, text, bothServe] of CORPUS) {
      const r = await diff.compare(Buffer.from(text, 'latin1'));
      const more = edgeAcceptsMore(r);
      if (more) problems.push(`${name}: ${more}`);
      if (bothServe && (r.edge.first !== 'accept' || r.llhttp.first !== 'accept')) {
        problems.push(
          `${name}: a well-formed request was refused (edge ${r.edge.refusedWith}, llhttp ${r.llhttp.refusedWith})`,
        );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('never serves what llhttp refuses, on mutations of well-formed requests', async () => {
    const seeds = CORPUS.filter(([, , ok]) => ok).map(([, t]) => t);
    const special = [0, 9, 10, 13, 32, 34, 44, 58, 59, 127, 128, 255];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...seeds),
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.oneof(fc.constantFrom(...special), fc.integer({ min: 0, max: 255 })),
            fc.boolean(),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        async (seed, edits) => {
          const bytes = [...Buffer.from(seed, 'latin1')];
          for (const [at, byte, insert] of edits) {
            const i = at % (bytes.length + 1);
            if (insert) bytes.splice(i, 0, byte);
            else bytes[Math.min(i, bytes.length - 1)] = byte;
          }
          const r = await diff.compare(Buffer.from(bytes));
          assert.equal(edgeAcceptsMore(r), undefined, JSON.stringify(Buffer.from(bytes).toString('latin1')));
        },
      ),
      { numRuns: Number(process.env.DIFF_RUNS ?? 300) },
    );
  });
});
