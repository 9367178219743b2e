/**
 * Starts and stops the lab's child processes (region nodes, edges, GeoDNS). Each child runs in its
 * own process group, so a kill reaches anything it spawned, and its output goes to
 * .meridian/logs/<name>.log. The pids are recorded in .meridian/lab.json so a lab that died without
 * cleaning up can have its orphans stopped by the next start.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectRoot } from '../adapters/region-table.js';

export interface ChildSpec {
  /** Unique name: `node:us-east-1`, `edge:eu-west-1`, `dns`. */
  name: string;
  /** Arguments after `meridian`, e.g. ['region', '--config', FILE, '--region', ID]. */
  args: string[];
  env?: Record<string, string>;
}

export type ChildState = 'starting' | 'running' | 'stopped' | 'killed' | 'exited';

export interface ChildInfo {
  name: string;
  pid: number | undefined;
  state: ChildState;
  exitCode: number | null;
  startedAtMs: number;
  restarts: number;
}

export type SupervisorEvent =
  | { type: 'started'; name: string; pid: number }
  | { type: 'exited'; name: string; code: number | null; signal: string | null; expected: boolean };

/** How to run the `meridian` command from here: the built JS when we are built, else tsx on the sources. */
export function meridianCommand(): { cmd: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const root = projectRoot();
  if (here.includes(`${join(root, 'dist')}`)) {
    return { cmd: process.execPath, args: [join(root, 'dist', 'src', 'cli', 'main.js')] };
  }
  return { cmd: process.execPath, args: ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts')] };
}

interface Managed {
  spec: ChildSpec;
  proc: ChildProcess | undefined;
  info: ChildInfo;
  expectExit: boolean;
  exited: Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * @example
 *   const sup = new Supervisor('.meridian', (e) => console.log(e));
 *   sup.start({ name: 'dns', args: ['dns', '--config', '.meridian/config.yaml'] });
 *   await sup.stopAll();
 */
/**
 * How much nicer than the lab itself its children run. The lab process hosts the WAN emulator:
 * on a machine short of CPU, an emulator that waits for a core stalls every path at once, and the
 * stall reads as packet delay to every edge's probes. Real networks do not queue behind the
 * servers they connect, so the emulator gets the CPU first. Raising a child's niceness needs no
 * privilege.
 */
export const LAB_CHILD_NICE = 5;

export class Supervisor {
  private readonly children = new Map<string, Managed>();
  private readonly command = meridianCommand();

  constructor(
    private readonly dir: string,
    private readonly onEvent: (e: SupervisorEvent) => void = () => {},
    private readonly childNice = 0,
  ) {}

  /** Stops processes a previous lab in this folder left behind (it crashed or was SIGKILLed). */
  static reapOrphans(dir: string): number[] {
    const file = join(dir, 'lab.json');
    if (!existsSync(file)) return [];
    let pids: number[] = [];
    try {
      pids = (JSON.parse(readFileSync(file, 'utf8')) as { pids?: number[] }).pids ?? [];
    } catch {
      return [];
    }
    const reaped: number[] = [];
    for (const pid of pids) {
      if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) continue;
      // Only ours: the pid must still run `meridian` (pids are reused).
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!cmdline.includes('main.') || !cmdline.includes('--config')) continue;
      killGroup(pid, 'SIGKILL');
      reaped.push(pid);
    }
    return reaped;
  }

  private record(): void {
    const pids = [...this.children.values()]
      .map((c) => c.info.pid)
      .filter((p): p is number => p !== undefined);
    writeFileSync(join(this.dir, 'lab.json'), JSON.stringify({ labPid: process.pid, pids }, null, 2));
  }

  start(spec: ChildSpec): ChildInfo {
    const prev = this.children.get(spec.name);
    if (
      prev?.proc &&
      prev.info.pid !== undefined &&
      prev.proc.exitCode === null &&
      prev.proc.signalCode === null
    ) {
      return prev.info;
    }
    const logFile = join(this.dir, 'logs', `${spec.name.replace(/[^a-z0-9.-]/gi, '_')}.log`);
    const fd = openSync(logFile, 'a');
    const proc = spawn(this.command.cmd, [...this.command.args, ...spec.args], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...spec.env },
    });
    closeSync(fd);
    if (this.childNice !== 0 && proc.pid !== undefined) {
      try {
        // Relative to the lab's own niceness (the child inherited it).
        setPriority(proc.pid, Math.min(19, this.childNice + getPriority()));
      } catch {
        // Not allowed here (a lowered limit): the child runs at the lab's priority.
      }
    }
    const info: ChildInfo = {
      name: spec.name,
      pid: proc.pid,
      state: 'starting',
      exitCode: null,
      startedAtMs: Date.now(),
      restarts: prev ? prev.info.restarts + 1 : 0,
    };
    const m: Managed = { spec, proc, info, expectExit: false, exited: Promise.resolve() };
    m.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        info.exitCode = code;
        if (info.state !== 'killed' && info.state !== 'stopped') info.state = 'exited';
        this.onEvent({ type: 'exited', name: spec.name, code, signal, expected: m.expectExit });
        resolve();
      });
      proc.once('error', () => resolve());
    });
    this.children.set(spec.name, m);
    this.record();
    if (proc.pid !== undefined) this.onEvent({ type: 'started', name: spec.name, pid: proc.pid });
    return info;
  }

  markRunning(name: string): void {
    const m = this.children.get(name);
    if (m && m.info.state === 'starting') m.info.state = 'running';
  }

  isRunning(name: string): boolean {
    const m = this.children.get(name);
    return !!m?.proc && m.proc.exitCode === null && m.proc.signalCode === null;
  }

  /** SIGKILL to the child's group: an abrupt crash, nothing flushed. */
  async kill(name: string): Promise<void> {
    const m = this.children.get(name);
    if (!m?.proc?.pid || !this.isRunning(name)) return;
    m.expectExit = true;
    m.info.state = 'killed';
    killGroup(m.proc.pid, 'SIGKILL');
    await m.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(name: string, graceMs = 3000): Promise<void> {
    const m = this.children.get(name);
    if (!m?.proc?.pid || !this.isRunning(name)) return;
    m.expectExit = true;
    m.info.state = 'stopped';
    const pid = m.proc.pid;
    killGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    await m.exited;
    clearTimeout(timer);
    // Anything the child spawned in its group goes too.
    killGroup(pid, 'SIGKILL');
  }

  async restart(name: string, env?: Record<string, string>): Promise<ChildInfo> {
    const m = this.children.get(name);
    if (!m) throw new Error(`no child named ${name}`);
    await this.stop(name);
    return this.start({ ...m.spec, env: { ...m.spec.env, ...env } });
  }

  spec(name: string): ChildSpec | undefined {
    return this.children.get(name)?.spec;
  }

  list(): ChildInfo[] {
    return [...this.children.values()].map((m) => ({ ...m.info }));
  }

  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all([...this.children.keys()].map((n) => this.stop(n, graceMs)));
    this.record();
  }

  /** Last resort on a crash of the lab itself: SIGKILL every group, synchronously. */
  killAllNow(): void {
    for (const [name, m] of this.children)
      if (m.proc?.pid && this.isRunning(name)) killGroup(m.proc.pid, 'SIGKILL');
  }

  /** Pids of children still alive (for the "none left" check). */
  leftovers(): number[] {
    return [...this.children.values()]
      .map((m) => m.info.pid)
      .filter((p): p is number => p !== undefined && alive(p));
  }
}
