/**
 * `npm run bench [name ...]`: runs every bench/*.bench.ts (or the named ones). Each benchmark
 * measures Meridian against a named peer in the same run and prints a table with ratios.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
let failed = 0;
for (const [i, f] of files.entries()) {
  process.stdout.write(`\n== [${i + 1}/${files.length}] ${f} ==\n`);
  try {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { run(): Promise<void> };
    await mod.run();
  } catch (e) {
    failed++;
    process.stdout.write(`!! ${f} failed: ${(e as Error).stack ?? e}\n`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
