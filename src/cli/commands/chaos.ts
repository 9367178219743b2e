/**
 * `meridian chaos`: injects a fault into the running lab through its API, authenticated with the
 * admin token the lab wrote under .meridian/.
 */
import { resolve } from 'node:path';
import { request } from 'undici';
import { CHAOS_USAGE, parseChaos } from '../../lab/chaos.js';
import { readAdminToken } from '../../lab/lab-config.js';

function option(argv: string[], name: string): [string | undefined, string[]] {
  const i = argv.indexOf(name);
  if (i < 0) return [undefined, argv];
  return [argv[i + 1], [...argv.slice(0, i), ...argv.slice(i + 2)]];
}

/** @example await run(['kill', 'eu-west-1', '--with-edge']) */
export async function run(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(CHAOS_USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const [dirArg, rest1] = option(argv, '--dir');
  const [labArg, rest] = option(rest1, '--lab');
  const dir = resolve(dirArg ?? process.env.MERIDIAN_LAB_DIR ?? '.meridian');
  const labUrl = labArg ?? 'http://127.0.0.1:8080';
  let action: ReturnType<typeof parseChaos>;
  let token: string;
  try {
    action = parseChaos(rest);
    token = readAdminToken(dir);
  } catch (e) {
    process.stderr.write(`meridian chaos: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const res = await request(`${labUrl}/api/chaos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(action),
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const body = (await res.body.json()) as { done?: string; error?: { message?: string } };
    if (res.statusCode !== 200) {
      process.stderr.write(`meridian chaos: ${body.error?.message ?? `HTTP ${res.statusCode}`}\n`);
      return 1;
    }
    process.stdout.write(`done: ${body.done}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(
      `meridian chaos: cannot reach the lab at ${labUrl} (${(e as Error).message}); start it with npm start\n`,
    );
    return 1;
  }
}
