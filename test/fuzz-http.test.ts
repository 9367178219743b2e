/**
 * The HTTP fuzzing suite: random and mutated requests (raw bytes, and structured requests from
 * fast-check) against a real region node and a real edge, each its own process, compared with what
 * Node's own parser accepts. Bounded by MERIDIAN_FUZZ_MS per target (default 20 s) and
 * MERIDIAN_FUZZ_COUNT; the seed is printed and MERIDIAN_FUZZ_SEED replays it. `npm run fuzz` runs
 * the same for longer. The oracle is in test/fuzz-support.ts; known open findings in fuzz-known.ts;
 * what it found is replayed by test/fuzz-findings.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzRequest } from './fuzz-http-gen.js';
import { knownFinding } from './fuzz-known.js';
import {
  describeFindings,
  FUZZ_COUNT,
  FUZZ_MS,
  FUZZ_SEED,
  fuzzHttp,
  type HttpTarget,
  llhttpReference,
  type ParserReference,
} from './fuzz-support.js';
import { type FuzzTargets, startFuzzTargets } from './fuzz-targets.js';
import { edgeAcceptsMore, startDifferential } from './http-differential.js';

const budget = { seed: FUZZ_SEED, ms: FUZZ_MS, count: FUZZ_COUNT, known: knownFinding };

describe(`HTTP fuzzing (seed ${FUZZ_SEED}; MERIDIAN_FUZZ_SEED replays, ${FUZZ_MS} ms per target)`, () => {
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

  const run = async (target: HttpTarget) => {
    const s = await fuzzHttp(target, ref, budget);
    process.stderr.write(
      `fuzz ${target.name}: ${s.cases} cases in ${s.ms} ms, statuses ${JSON.stringify(s.statuses)}\n`,
    );
    assert.ok(s.cases > 0);
    assert.equal(s.findings.length, 0, describeFindings(s));
  };

  it('a region node answers every request without a crash, a 5xx or accepting what llhttp rejects', () =>
    run(targets.region));

  it('an edge answers every request without a crash, a 5xx or accepting what llhttp rejects', () =>
    run(targets.edge));

  it("an edge's parser reads only what llhttp reads, request by request (test/http-differential.ts)", async () => {
    // The edge's own parser in this process, against node:http, on the same cases: stricter than
    // the process-level check above (every pipelined request, its method, target and body digest).
    const diff = await startDifferential();
    const start = Date.now();
    const found: string[] = [];
    let cases = 0;
    try {
      for (let i = 0; i < FUZZ_COUNT && Date.now() - start < FUZZ_MS; i++, cases++) {
        const req = fuzzRequest(FUZZ_SEED, i);
        const more = edgeAcceptsMore(await diff.compare(req.bytes));
        if (more && found.length < 5)
          found.push(
            `seed ${FUZZ_SEED} case ${i}: ${more}\n  request: ${JSON.stringify(req.bytes.subarray(0, 300).toString('latin1'))}`,
          );
      }
    } finally {
      await diff.close();
    }
    process.stderr.write(`fuzz edge parser: ${cases} cases in ${Date.now() - start} ms\n`);
    assert.ok(cases > 0);
    assert.deepEqual(found, []);
  });
});
