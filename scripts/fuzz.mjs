#!/usr/bin/env node
// The fuzzing suite for longer than `npm test` gives it: the same tests (test/fuzz-http.test.ts for
// a region node and an edge, test/fuzz-dns.test.ts for GeoDNS), each target for --minutes, with a
// progress line every 10 s and a summary table at the end. Exits 1 when any target found something.
// Usage: npm run fuzz -- [--minutes 10] [--seed N] [--targets region,edge,dns]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    targets: { type: 'string', default: 'region,edge,dns' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('usage: npm run fuzz -- [--minutes 10] [--seed N] [--targets region,edge,dns]');
  process.exit(0);
}
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error('--minutes must be a positive number');
  process.exit(2);
}
const seed = values.seed ?? String(Date.now() % 2 ** 31);
const targets = new Set(values.targets.split(',').map((t) => t.trim()));
const dir = mkdtempSync(join(tmpdir(), 'meridian-fuzz-'));
const report = join(dir, 'report.jsonl');

/** Runs one test file directly (node:test runs a file given to node), only the named targets. */
function run(file, names) {
  return new Promise((resolve) => {
    const args = ['--import', 'tsx'];
    for (const n of names) args.push(`--test-name-pattern=${n}`);
    args.push(file);
    const child = spawn(process.execPath, args, {
      env: {
        ...process.env,
        MERIDIAN_FUZZ_MS: String(Math.round(minutes * 60_000)),
        MERIDIAN_FUZZ_SEED: seed,
        MERIDIAN_FUZZ_PROGRESS: '1',
        MERIDIAN_FUZZ_REPORT: report,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d.toString();
    });
    child.on('exit', (code) => {
      if (code !== 0) process.stdout.write(out);
      resolve(code === 0);
    });
  });
}

console.log(
  `fuzzing ${[...targets].join(', ')} for ${minutes} min each, seed ${seed} (MERIDIAN_FUZZ_SEED=${seed} replays)`,
);
const started = Date.now();
let ok = true;
const http = ['region', 'edge'].filter((t) => targets.has(t)).map((t) => `^an? ${t}`);
if (http.length > 0) ok = (await run('test/fuzz-http.test.ts', http)) && ok;
if (targets.has('dns')) ok = (await run('test/fuzz-dns.test.ts', [])) && ok;

const rows = existsSync(report)
  ? readFileSync(report, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
const table = [
  ['target', 'seed', 'cases', 'seconds', 'cases/s', 'findings', 'known hits', 'answers (most frequent)'],
];
for (const r of rows) {
  const top = Object.entries(r.statuses)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([k, n]) => `${k}:${n}`)
    .join(' ');
  const known = Object.values(r.known ?? {}).reduce((a, b) => a + b, 0);
  table.push([
    r.target,
    String(r.seed),
    String(r.cases),
    (r.ms / 1000).toFixed(0),
    (r.cases / (r.ms / 1000)).toFixed(0),
    String(r.findings.length),
    String(known),
    top,
  ]);
}
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
console.log(`\nfuzzing summary (${((Date.now() - started) / 60_000).toFixed(1)} min):`);
for (const row of table) console.log(`  ${row.map((c, i) => c.padEnd(widths[i])).join('  ')}`);
for (const r of rows)
  for (const f of r.findings)
    console.log(
      `\n${f.kind} on ${f.target}, seed ${f.seed} case ${f.caseIndex}: ${f.detail}\n  request (base64): ${f.bytes}`,
    );
rmSync(dir, { recursive: true, force: true });
console.log(ok ? '\nno findings' : '\nFINDINGS: see above (each with its seed and case)');
process.exit(ok ? 0 : 1);
