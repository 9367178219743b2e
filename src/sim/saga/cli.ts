/**
 * Runs the saga and idempotency simulation: `npm run sim -- --workload saga --seed 1` (or
 * `node --import tsx src/sim/saga/cli.ts --seed 1`), or a sweep with `--seeds 20`. Prints a table per run; on a violation, the checker, the message and the
 * command that replays it, and exits 1.
 */
import { pathToFileURL } from 'node:url';
import {
  DEFAULT_SAGA_SIM,
  SAGA_BUGS,
  type SagaSimBugs,
  type SagaSimResult,
  simulateSagas,
} from './saga-sim.js';

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function formatRow(r: SagaSimResult): string {
  const s = r.stats;
  return [
    String(r.options.seed).padStart(6),
    String(s.sagas).padStart(6),
    String(s.completed).padStart(5),
    String(s.compensated).padStart(5),
    String(s.stuck + s.running).padStart(5),
    String(s.settled).padStart(4),
    String(s.handedOver).padStart(4),
    String(s.deposits + s.increments).padStart(6),
    String(s.crashes).padStart(4),
    String(s.partitions).padStart(4),
    String(s.clientRetriesElsewhere).padStart(5),
    String(s.duplicatedDeliveries).padStart(5),
    `${(s.settledAtMs / 1000).toFixed(1)}s`.padStart(7),
    r.violations.length === 0 ? 'ok' : `${r.violations.length} violation(s)`,
  ].join(' ');
}

export const HEADER =
  '  seed  sagas  done  comp stuck fenc hand  keyed  crs  prt retry   dup settled result\n' +
  '  ----  -----  ----  ---- ----- ---- ----  -----  ---  --- -----   --- ------- ------';

/** 8000, 8000ms, 8s or 1m. */
function parseMs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`bad duration '${s}' (use e.g. 8s, 500ms)`);
  const n = Number(m[1]);
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
}

export async function main(argv: string[]): Promise<number> {
  const seed = Number(arg(argv, '--seed') ?? 1);
  const seeds = Number(arg(argv, '--seeds') ?? 1);
  const durationMs = parseMs(arg(argv, '--duration') ?? `${DEFAULT_SAGA_SIM.durationMs}ms`);
  const faults = !argv.includes('--no-faults');
  const regionsArg = arg(argv, '--regions');
  const regions = regionsArg
    ? regionsArg
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean)
    : DEFAULT_SAGA_SIM.regions;
  let bugs: SagaSimBugs | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--bug') continue;
    const name = argv[i + 1] ?? '';
    if (!(SAGA_BUGS as readonly string[]).includes(name)) {
      process.stderr.write(
        `meridian sim: unknown --bug '${name}' for the saga workload; known: ${SAGA_BUGS.join(', ')}\n`,
      );
      return 2;
    }
    bugs = { ...bugs, [name]: true };
  }
  process.stdout.write(`${HEADER}\n`);
  let failed = 0;
  const t0 = Date.now();
  for (let i = 0; i < seeds; i++) {
    let r: SagaSimResult;
    try {
      r = await simulateSagas({
        ...DEFAULT_SAGA_SIM,
        seed: seed + i,
        durationMs,
        faults,
        regions,
        ...(bugs ? { bugs } : {}),
      });
    } catch (e) {
      failed++;
      process.stdout.write(`${String(seed + i).padStart(6)} the run threw: ${(e as Error).stack ?? e}\n`);
      process.stdout.write(
        `  replay: npm run sim -- --workload saga --seed ${seed + i} --duration ${durationMs}ms${regionsArg ? ` --regions ${regions.join(',')}` : ''}\n`,
      );
      continue;
    }
    process.stdout.write(`${formatRow(r)}\n`);
    for (const v of r.violations.slice(0, 10)) process.stdout.write(`  !! ${v.checker}: ${v.message}\n`);
    if (r.violations.length > 0) {
      failed++;
      process.stdout.write(`  replay: ${r.replay}\n`);
    }
  }
  process.stdout.write(
    `${seeds} seed(s), ${failed} failed, ${((Date.now() - t0) / 1000).toFixed(1)} s wall\n`,
  );
  return failed > 0 ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
