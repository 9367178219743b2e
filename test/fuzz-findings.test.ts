/**
 * What the fuzzing suite found, each replayed as a regression test against a real region node and
 * a real edge and held to the suite's oracle (test/fuzz-support.ts). Found by test/fuzz-http.test.ts
 * with MERIDIAN_FUZZ_SEED=99 against the tree as issue 10 was filed (fecf0ce): the region node and
 * the edge answered each of these wrongly; the fixes landed in f848773 (region) and 7b638fa (edge).
 * A finding whose fix has not landed yet goes here with `{ todo: 'reason' }` and in fuzz-known.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FuzzRequest } from './fuzz-http-gen.js';
import { exchange, type HttpTarget, judge, llhttpReference, type ParserReference } from './fuzz-support.js';
import { type FuzzTargets, startFuzzTargets } from './fuzz-targets.js';

const raw = (text: string): FuzzRequest => ({ kind: 'raw', bytes: Buffer.from(text, 'latin1') });
const deepPut = (path: string, depth: number, headers: string[] = []): FuzzRequest => {
  const body = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const head = [`PUT ${path} HTTP/1.1`, 'Host: fuzz', ...headers, 'Content-Type: application/json'];
  return {
    kind: 'structured',
    bytes: Buffer.from(`${head.join('\r\n')}\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
  };
};

interface Found {
  what: string;
  /** Where the suite found it: seed, case, target. */
  found: string;
  req: FuzzRequest;
  todo?: string;
}

const FOUND: Found[] = [
  {
    what: 'a JSON body nested 18,449 deep answered 500 (issue 10 row 2)',
    found: 'seed 99 case 107, region and edge',
    req: deepPut('/v1/accounts/%23!%7B', 18_449, ['accept: 0']),
  },
  {
    what: 'a JSON body nested 19,987 deep with Meridian-Peer and an Idempotency-Key answered 500',
    found: 'seed 99 case 1335, region and edge',
    req: deepPut('/v1/settings/eP?!', 19_987, [
      'meridian-consistency: %o+|R',
      'meridian-max-wait-ms: $n',
      'meridian-peer: eu-west-1',
      'idempotency-key: }>6xm}8=d!',
    ]),
  },
  {
    what: 'a JSON body nested 7,880 deep to a pinned collection answered 500',
    found: 'seed 99 case 2865, region',
    req: deepPut('/v1/profiles/x!(7?WgS.2%23n%5BC', 7_880, ['meridian-consistency: 60000']),
  },
  {
    what: 'an absolute-form target read /internal/v1/status without the cluster secret (issue 10 row 1)',
    found: 'seed 99 cases 112 and 826, region',
    req: raw('GET http://x/internal/v1/status HTTP/1.1\r\nHost: fuzz\r\nAccept: application/json\r\n\r\n'),
  },
  {
    what: 'a percent-encoded /%69nternal read /internal/v1/status without the cluster secret (issue 10 row 1)',
    found: 'seed 99 case 1168, region',
    req: raw('GET /%69nternal/v1/status HTTP/1.1\r\nHost: fuzz\r\nAccept: application/json\r\n\r\n'),
  },
  {
    what: 'a byte 0xFE in the request target, which llhttp refuses, was routed (404)',
    found: 'seed 99 case 222, edge',
    req: raw('GET /internal/v1!\u00fe/status HTTP/1.1\r\nHost: fuzz\r\n\r\n'),
  },
  {
    what: 'Expect: 999-foo (llhttp: 417) was served (issue 10 row 8)',
    found: 'seed 99 case 490, edge',
    req: raw(
      'DELETE /v1/settings/fz0 HTTP/1.1\r\nUpgrade: websocket\r\nExpect: 999-foo\r\nHost: fuzz\r\n\r\n',
    ),
  },
  {
    what: 'a request without a Host header (a mangled "Ho6t") was served (issue 10 row 8)',
    found: 'seed 99 case 880, edge',
    req: raw(
      'GET /v1/settings/fz32 HTTP/1.1\r\nHo6t: \u00c3\u00f4\u00e9~i\u00e9\u00aefuzz\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n17\r\n{"colour":"te\u00e2l","n":1}\r\n0\r\n\r\n',
    ),
  },
];

describe('what the fuzzing suite found, replayed against a real region node and edge', () => {
  let targets: FuzzTargets;
  let ref: ParserReference;
  before(async () => {
    ref = await llhttpReference();
    targets = await startFuzzTargets();
  });
  after(async () => {
    await targets?.stop();
    await ref?.close();
  });

  for (const f of FOUND) {
    for (const name of ['region', 'edge'] as const) {
      it(`${name}: ${f.what} [${f.found}]`, f.todo ? { todo: f.todo } : {}, async () => {
        const t: HttpTarget = targets[name];
        const [ans, verdict] = await Promise.all([
          exchange(t.host, t.port, f.req.bytes),
          f.req.kind === 'raw' ? ref.verdict(f.req.bytes) : Promise.resolve(undefined),
        ]);
        assert.equal(judge(f.req, ans, verdict), undefined, `answered: ${ans.text.slice(0, 300)}`);
        assert.ok(t.alive(), 'the process is alive');
        assert.equal(await t.canary?.(), undefined, "another client's write still works");
      });
    }
  }

  it('the canary writes made among the findings replicated', async () => {
    assert.equal(await targets.region.settle?.(), undefined);
    assert.equal(await targets.edge.settle?.(), undefined);
  });
});
