/**
 * The core must stay deterministic and self-contained (DESIGN.md, Shape): no clock, randomness,
 * timers or I/O of its own. This reads its sources. That it imports nothing from the layers above
 * it is one of the rules of test/layering.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Code only: comments (where @example blocks live) are stripped before matching. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const FORBIDDEN: [RegExp, string][] = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew Date\s*\(/, 'new Date()'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/(^|[^.\w])(setTimeout|setInterval|setImmediate)\s*\(/, 'a timer of its own'],
  [/\bprocess\.(env|hrtime|nextTick)\b/, 'process state'],
  [/from 'node:(fs|net|dgram|http|https|child_process|worker_threads|timers)/, 'I/O modules'],
];

describe('src/core boundary', () => {
  const files = sources('src/core');

  it('has sources to check', () => {
    assert.ok(files.length > 10, `found only ${files.length} files under src/core`);
  });

  it('reads no clock, draws no random numbers, sets no timers and does no I/O itself', () => {
    const problems: string[] = [];
    for (const f of files) {
      const lines = code(readFileSync(f, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        for (const [re, what] of FORBIDDEN) {
          // ports.ts declares the Timers interface, whose methods share the globals' names.
          if (f.endsWith('ports.ts') && what === 'a timer of its own') continue;
          if (re.test(line)) problems.push(`${f}:${i + 1}: ${what}: ${line.trim()}`);
        }
      });
    }
    assert.deepEqual(problems, []);
  });

  it('the checker itself catches a planted use of the clock', () => {
    const planted = code('const t = Date.now(); // comment Math.random()\n/** Date.now() in a doc */');
    assert.ok(FORBIDDEN[0]![0].test(planted));
    assert.ok(!FORBIDDEN[2]![0].test(planted), 'comments are not code');
  });
});
