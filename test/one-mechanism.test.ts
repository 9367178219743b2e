/**
 * One mechanism, one implementation (issue 11 item 2): the backoff, the PRNG, the virtual time, the
 * idempotency path and the account router each exist once, and the region node and the simulator
 * both use that one. Reads the sources, as test/core-boundary.test.ts does, so a second copy fails
 * here instead of drifting apart from the first.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Code only: comments (where @example blocks live) are stripped before matching. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const SELF = 'test/one-mechanism.test.ts';
const files = [...sources('src'), ...sources('test'), ...sources('bench')]
  .filter((f) => f !== SELF)
  .map((f) => ({
    f,
    text: code(readFileSync(f, 'utf8')),
  }));

/** The files whose code matches `re`, excluding tests unless `tests` is set. */
function where(re: RegExp, tests = false): string[] {
  return files
    .filter(({ f, text }) => (tests || !f.endsWith('.test.ts')) && re.test(text))
    .map(({ f }) => f)
    .sort();
}

const importsFrom = (file: string, symbol: string, module: string): boolean => {
  const text = files.find(({ f }) => f === file)?.text ?? '';
  const re = new RegExp(`(?:import|export)\\s*\\{[^}]*\\b${symbol}\\b[^}]*\\}\\s*from\\s*'[./]*${module}'`);
  return re.test(text);
};

describe('one mechanism, one implementation', () => {
  it('one PRNG: the seeding and mixing constants of a generator appear only in src/core/random.ts', () => {
    // splitmix32's golden-ratio increment and mulberry32's; tests included (fuzzers draw numbers too).
    assert.deepEqual(where(/0x9e3779b9|0x6d2b79f5|\bxorshift|\bsfc32\b/i, true), ['src/core/random.ts']);
    assert.ok(
      importsFrom('src/adapters/system.ts', 'Prng', 'core/random.js'),
      'the node draws from the core PRNG',
    );
    assert.ok(
      importsFrom('src/sim/random.ts', 'Prng', 'core/random.js'),
      'the simulator draws from the core PRNG',
    );
  });

  it('one backoff: only src/core/backoff.ts defines one, and saga retries use it', () => {
    assert.deepEqual(where(/\bclass\s+\w*Backoff\b|function\s+\w*[bB]ackoff\w*\s*\(/), [
      'src/core/backoff.ts',
    ]);
    assert.ok(importsFrom('src/core/saga/retry.ts', 'backoffMs', 'backoff.js'));
  });

  it('one virtual time: only src/sim/time.ts defines a VirtualTime', () => {
    assert.deepEqual(where(/\bclass\s+VirtualTime\b/, true), ['src/sim/time.ts']);
  });

  it('one idempotency path: only core/idempotency.ts begins, replays or catches a race; the node calls it', () => {
    assert.deepEqual(where(/\.begin\(|\.replayOf\(|instanceof IdempotencyRaced/), [
      'src/core/idempotency.ts',
    ]);
    assert.ok(importsFrom('src/servers/region/idempotency.ts', 'withIdempotency', 'core/idempotency.js'));
  });

  it('one account router: the node and the simulator both route account steps with core/saga/router.ts', () => {
    assert.ok(importsFrom('src/servers/region/sagas.ts', 'AccountRouter', 'core/saga/router.js'));
    assert.ok(importsFrom('src/sim/saga/saga-sim.ts', 'AccountRouter', 'core/saga/router.js'));
    assert.deepEqual(where(/replayRegion\s*:\s*home\b.*\n?.*continue|for \(let hop = 0/), [
      'src/core/saga/router.ts',
    ]);
  });

  it('the checks can fail: a planted second PRNG and a second begin() are found', () => {
    assert.ok(/0x9e3779b9|0x6d2b79f5/i.test(code('let a = (a + 0x6D2B79F5) >>> 0;')));
    assert.ok(/\.begin\(/.test(code('const d = await keys.begin(key, fp);')));
    assert.ok(!/\.begin\(/.test(code('// keys.begin(key, fp) in a comment')));
  });
});
