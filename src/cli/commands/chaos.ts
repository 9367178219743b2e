/**
 * `meridian chaos`: injects a fault into the running lab through its API, authenticated with the
 * admin token the lab wrote under .meridian/.
 */
import { resolve } from 'node:path';
import { request } from 'undici';
import { CHAOS_USAGE, type ChaosAction, parseChaos } from '../../lab/chaos.js';
import { readAdminToken } from '../../lab/lab-config.js';
import { EXIT, parseCommand, UsageError } from '../args.js';

const USAGE = `${CHAOS_USAGE}  -h, --help                  this help

examples:
  meridian chaos kill eu-west-1 --with-edge
  meridian chaos partition us-east-1 ap-northeast-1
  meridian chaos skew eu-west-1 -300
  meridian chaos heal

exit codes: 0 done, 1 the lab refused or cannot be reached, 2 bad arguments or no lab token
`;

/** A negative number is a value here (skew MS), not an option: hidden from parseArgs, then restored. */
const NEGATIVE = /^-\d+(\.\d+)?$/;
const HIDDEN = '\u0000';

/** @example await run(['kill', 'eu-west-1', '--with-edge']) */
export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(
    argv.map((w) => (NEGATIVE.test(w) ? `${HIDDEN}${w}` : w)),
    {
      options: { dir: { type: 'string' }, lab: { type: 'string' }, 'with-edge': { type: 'boolean' } },
      usage: USAGE,
      positionals: [1, 3],
    },
  );
  if (!args) return EXIT.ok;
  const words = args.positionals.map((w) => (w.startsWith(HIDDEN) ? w.slice(1) : w));
  let action: ChaosAction;
  try {
    action = parseChaos([...words, ...(args.values['with-edge'] ? ['--with-edge'] : [])]);
  } catch (e) {
    // parseChaos appends the usage to its message: keep the first line.
    throw new UsageError((e as Error).message.split('\n')[0]!, USAGE);
  }
  const dir = resolve(args.values.dir ?? process.env.MERIDIAN_LAB_DIR ?? '.meridian');
  const labUrl = args.values.lab ?? 'http://127.0.0.1:8080';
  let token: string;
  try {
    token = readAdminToken(dir);
  } catch (e) {
    process.stderr.write(`meridian chaos: ${(e as Error).message}\n`);
    return EXIT.usage;
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
      return EXIT.failure;
    }
    process.stdout.write(`done: ${body.done}\n`);
    return EXIT.ok;
  } catch (e) {
    process.stderr.write(
      `meridian chaos: cannot reach the lab at ${labUrl} (${(e as Error).message}); start it with npm start\n`,
    );
    return EXIT.failure;
  }
}
