/**
 * Tests that need a real service (PostgreSQL, Redis, NATS) or a system tool (dig, chromium, nginx)
 * call these. On a laptop without it they skip with a clear message; in CI (CI=true) a missing
 * service or tool fails the test instead.
 */
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import type { TestContext } from 'node:test';

export const inCI = process.env.CI === 'true';

/** Whether something accepts TCP connections at host:port within `timeoutMs`. */
export function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export const SERVICES = {
  postgres: { host: '127.0.0.1', port: 5432 },
  redis: { host: '127.0.0.1', port: 6379 },
  nats: { host: '127.0.0.1', port: 4222 },
} as const;

/**
 * Returns true when the service answers. Otherwise skips the test (laptop) or throws (CI).
 * @example if (!(await needService(t, 'postgres'))) return;
 */
export async function needService(t: TestContext, name: keyof typeof SERVICES): Promise<boolean> {
  const { host, port } = SERVICES[name];
  if (await reachable(host, port)) return true;
  const msg = `${name} is not answering at ${host}:${port}; start it (see README, "Services")`;
  if (inCI) throw new Error(`${msg} — required in CI`);
  t.skip(msg);
  return false;
}

/** Whether a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Like needService, for a system tool such as dig, chromium or nginx. */
export function needTool(t: TestContext, cmd: string, aptPackage: string): boolean {
  if (hasCommand(cmd)) return true;
  const msg = `${cmd} is not installed (apt-get install ${aptPackage}); .ci/run installs it`;
  if (inCI) throw new Error(`${msg} — required in CI`);
  t.skip(msg);
  return false;
}
