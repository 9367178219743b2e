/**
 * HTTP/1.1 requests for the fuzzing suite, each a function of a seed so a printed seed replays it:
 * raw bytes (valid templates mangled at the byte, line and framing level) and structured requests
 * built with fast-check (methods, path spellings, Meridian headers, JSON bodies of any shape and
 * depth), serialized with a correct Content-Length.
 */
import fc from 'fast-check';
import { Prng } from '../src/core/random.js';

/** Seeded uniform numbers in [0, 1): the core's one PRNG (src/core/random.ts), as a function. */
export function prng(seed: number): () => number {
  const p = new Prng(seed >>> 0);
  return () => p.next();
}

type Rnd = () => number;
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);

export interface FuzzRequest {
  kind: 'raw' | 'structured';
  bytes: Buffer;
}

function request(head: string[], body = ''): string {
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/** Well-formed requests the servers know, the starting points of the mutations. */
function templates(key: string): string[] {
  const doc = JSON.stringify({ colour: 'teal', n: 1 });
  return [
    request(['GET /healthz HTTP/1.1', 'Host: fuzz']),
    request([`GET /v1/settings/${key} HTTP/1.1`, 'Host: fuzz', 'Accept: application/json']),
    request(
      [
        `PUT /v1/settings/${key} HTTP/1.1`,
        'Host: fuzz',
        'Content-Type: application/json',
        `Content-Length: ${doc.length}`,
      ],
      doc,
    ),
    request(
      [
        `PUT /v1/settings/${key} HTTP/1.1`,
        'Host: fuzz',
        'Content-Type: application/json',
        'Transfer-Encoding: chunked',
      ],
      `${doc.length.toString(16)}\r\n${doc}\r\n0\r\n\r\n`,
    ),
    request(
      [
        `POST /v1/likes/${key}/increment HTTP/1.1`,
        'Host: fuzz',
        'Content-Type: application/json',
        'Content-Length: 8',
      ],
      '{"by":2}',
    ),
    request([`DELETE /v1/settings/${key} HTTP/1.1`, 'Host: fuzz']),
    request(['GET /internal/v1/status HTTP/1.1', 'Host: fuzz']),
    request(['GET /v1/sagas HTTP/1.1', 'Host: fuzz', 'Connection: close']),
  ];
}

/** Header lines that have broken HTTP servers: framing conflicts, smuggling shapes, odd bytes. */
const NASTY_HEADERS = [
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip, chunked',
  'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding : chunked',
  'Transfer-Encoding:\tchunked',
  ' Transfer-Encoding: chunked',
  'Content-Length: 0',
  'Content-Length: 5',
  'Content-Length: -1',
  'Content-Length: 1, 1',
  'Content-Length: 99999999999999999999',
  'Content-Length: +5',
  'Host: other',
  'Host:',
  'Expect: 100-continue',
  'Expect: 999-foo',
  'Connection: close',
  'Connection: keep-alive, Upgrade',
  'Upgrade: websocket',
  'Meridian-Min-Version: ',
  'Meridian-Min-Version: garbage',
  'Meridian-Max-Wait-Ms: 60000',
  'Meridian-Max-Wait-Ms: -5',
  'Meridian-Home-Region: nowhere',
  'Meridian-Peer: us-east-1',
  'Idempotency-Key: k',
  'X-Folded: a\r\n b',
  'X-Nul: a\u0000b',
  'X-Bare-CR: a\rb',
  'Cookie: meridian-version=%%%',
];

function mutate(rnd: Rnd, text: string): Buffer {
  let b = Buffer.from(text, 'latin1');
  const edits = 1 + int(rnd, 3);
  for (let e = 0; e < edits; e++) {
    const at = int(rnd, b.length + 1);
    switch (int(rnd, 10)) {
      case 0: // flip bytes
        for (let i = 0; i < 1 + int(rnd, 4) && b.length > 0; i++) b[int(rnd, b.length)] = int(rnd, 256);
        break;
      case 1: // insert noise
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + int(rnd, 16) }, () => int(rnd, 256))),
          b.subarray(at),
        ]);
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(rnd, 12)))]);
        break;
      case 3: // bare LF or bare CR line endings
        b = Buffer.from(b.toString('latin1').replace(/\r\n/g, rnd() < 0.5 ? '\n' : '\r'), 'latin1');
        break;
      case 4: {
        // a nasty header line after the request line
        const s = b.toString('latin1');
        const eol = s.indexOf('\r\n');
        if (eol >= 0)
          b = Buffer.from(
            `${s.slice(0, eol + 2)}${pick(rnd, NASTY_HEADERS)}\r\n${s.slice(eol + 2)}`,
            'latin1',
          );
        break;
      }
      case 5: // truncate
        b = b.subarray(0, at);
        break;
      case 6: {
        // a long run of one byte: header values, targets and chunk extensions of odd sizes
        const n = pick(rnd, [100, 1000, 9000, 17_000, 70_000]);
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.alloc(n, pick(rnd, [0x61, 0x3b, 0x25, 0x2f, 0x20, 0x5b])),
          b.subarray(at),
        ]);
        break;
      }
      case 7: {
        // the request line: method, target spelling, version
        const s = b.toString('latin1');
        const [line = '', ...rest] = s.split('\r\n');
        const parts = line.split(' ');
        const which = int(rnd, 3);
        parts[which] = pick(
          rnd,
          [
            [
              'GET',
              'PUT',
              'POST',
              'DELETE',
              'PATCH',
              'OPTIONS',
              'TRACE',
              'CONNECT',
              'get',
              'G ET',
              'PRI',
              '',
            ],
            [
              '/',
              '*',
              'http://x/internal/v1/status',
              '/%69nternal/v1/status',
              '//internal/v1/status',
              '/v1/../internal/v1/status',
              '/INTERNAL/v1/status',
              '/v1/settings/%FF%FE',
              '/v1/settings/a%00b',
              '/v1/settings/' + 'k'.repeat(2000),
              '/v1/settings/k?x=%',
              '',
            ],
            ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', 'HTTP/1', 'http/1.1', ''],
          ][which] as string[],
        );
        b = Buffer.from([parts.join(' '), ...rest].join('\r\n'), 'latin1');
        break;
      }
      case 8: {
        // chunked framing: extensions, sizes and terminators
        const frames = [
          '5;aaaa\r\nhello\r\n0\r\n\r\n',
          '5\r\nhelloXX0\r\n\r\n',
          'fffffffffffffffff\r\nx\r\n0\r\n\r\n',
          '-1\r\nx\r\n0\r\n\r\n',
          '5 \r\nhello\r\n0\r\n\r\n',
          '0\r\nTrailer: x\r\n\r\n',
          '1\nx\n0\n\n',
        ];
        const s = b.toString('latin1');
        const end = s.indexOf('\r\n\r\n');
        if (end >= 0)
          b = Buffer.from(
            `${s.slice(0, end)}\r\nTransfer-Encoding: chunked\r\n\r\n${pick(rnd, frames)}`,
            'latin1',
          );
        break;
      }
      default: {
        // two requests in one write (pipelining), the second mangled too
        b = Buffer.concat([b, Buffer.from(text, 'latin1').subarray(0, int(rnd, text.length + 1))]);
      }
    }
  }
  return b;
}

/** A raw request: a template mangled a few times. */
export function rawRequest(seed: number): FuzzRequest {
  const rnd = prng(seed);
  const t = pick(rnd, templates(`fz${int(rnd, 50)}`));
  return { kind: 'raw', bytes: rnd() < 0.1 ? Buffer.from(t, 'latin1') : mutate(rnd, t) };
}

const segment = fc.oneof(
  fc.constantFrom(
    'v1',
    'settings',
    'likes',
    'tags',
    'profiles',
    'accounts',
    'eu-profiles',
    'sagas',
    'internal',
    'healthz',
    'metrics',
    '..',
    '.',
    '',
  ),
  fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)),
  fc.string({ unit: 'binary', maxLength: 8 }).map((s) => encodeURIComponent(s)),
  fc.constantFrom('%69nternal', '%2e%2e', '%2F', '%00', '%FF%FE', 'INTERNAL', 'k'.repeat(300)),
);

const path = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('settings', 'likes', 'tags', 'profiles', 'accounts', 'eu-profiles'),
      fc.string({ minLength: 1, maxLength: 20 }),
    )
    .map(([c, k]) => `/v1/${c}/${encodeURIComponent(k)}`),
  fc.array(segment, { maxLength: 5 }).map((segs) => `/${segs.join('/')}`),
);

/** JSON of any shape, and the deep and wide shapes that break recursive code. */
const body = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 20_000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 5_000 }).map((d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1, max: 20_000 })
      .map((n) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])))),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{}}}',
      '{"value":1e999}',
      '"\\ud800"',
      '{',
      '',
      'null',
      '{"by":"NaN"}',
      '{"by":1e308}',
      '{"by":-1}',
      '{"delta":5}',
    ),
  },
);

const headerValue = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', '0', '-1', '60000', 'us-east-1', 'eu-west-1', 'x'.repeat(5000)),
);
const headers = fc.dictionary(
  fc.constantFrom(
    'meridian-min-version',
    'meridian-max-wait-ms',
    'meridian-home-region',
    'idempotency-key',
    'meridian-consistency',
    'content-type',
    'accept',
    'cookie',
    'meridian-peer',
    'authorization',
    'expect',
  ),
  headerValue,
  { maxKeys: 4 },
);

const structured = fc.record({
  method: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  path,
  query: fc.option(fc.string({ maxLength: 20 }).map(encodeURIComponent), { nil: undefined }),
  headers,
  body: fc.option(body, { nil: undefined }),
});

/** A structured request: well-framed HTTP around whatever fast-check draws for the rest. */
export function structuredRequest(seed: number): FuzzRequest {
  const [r] = fc.sample(structured, { seed, numRuns: 1 });
  if (!r) throw new Error('fast-check drew nothing');
  const head = [`${r.method} ${r.path}${r.query === undefined ? '' : `?${r.query}`} HTTP/1.1`, 'Host: fuzz'];
  for (const [k, v] of Object.entries(r.headers)) {
    // Header values cannot carry CR, LF or NUL on the wire; the raw mutations try those.
    head.push(`${k}: ${v.replace(/[\r\n\0]/g, ' ')}`);
  }
  const bodyBytes = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body, 'utf8');
  if (r.body !== undefined) {
    if (!('content-type' in r.headers)) head.push('Content-Type: application/json');
    head.push(`Content-Length: ${bodyBytes.length}`);
  }
  return {
    kind: 'structured',
    bytes: Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'utf8'), bodyBytes]),
  };
}

/** Case `i` of a run with `seed`: raw and structured requests alternate. */
export function fuzzRequest(seed: number, i: number): FuzzRequest {
  // An independent stream per case, so a printed (seed, case) replays alone.
  const caseSeed = new Prng(seed >>> 0).fork(`case ${i}`).u32() | 0;
  return i % 2 === 0 ? rawRequest(caseSeed) : structuredRequest(caseSeed);
}
