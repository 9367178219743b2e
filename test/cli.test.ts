/**
 * `meridian` as an operator runs it: a child process per command line, judged by its exit code
 * (0 ok, 1 failure, 2 usage), stdout and stderr (docs/cli.md).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { projectRoot } from '../src/adapters/region-table.js';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

const root = projectRoot();

function meridian(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args],
      { cwd: root, env: { ...process.env, NODE_TEST_CONTEXT: '', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const dir = mkdtempSync(join(tmpdir(), 'meridian-cli-'));
const SECRET = 'a-cluster-secret-of-32-characters';

/** A valid two-region config; `edit` changes the object before it is written. */
function configFile(name: string, edit: (raw: Record<string, unknown>) => void = () => {}): string {
  const raw: Record<string, unknown> = {
    secrets: { clusterSecret: { env: 'MERIDIAN_CLUSTER_SECRET' } },
    regions: [
      {
        id: 'us-east-1',
        lat: 38.9,
        lon: -77.4,
        node: { listen: { port: 7070 }, url: 'http://127.0.0.1:7070' },
        edge: { listen: { port: 8080 }, url: 'http://127.0.0.1:8080' },
      },
      {
        id: 'eu-west-1',
        lat: 53.3,
        lon: -6.3,
        node: { listen: { port: 7071 }, url: 'http://127.0.0.1:7071' },
      },
    ],
    collections: [{ name: 'settings', policy: 'lww' }],
    store: { kind: 'memory' },
  };
  edit(raw);
  const path = join(dir, name);
  writeFileSync(path, stringify(raw));
  return path;
}

const withSecret = { MERIDIAN_CLUSTER_SECRET: SECRET };

describe('meridian (child process)', () => {
  it('--version prints the version of package.json and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await meridian(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `meridian ${version}\n`);
  });

  it('every command has --help with its options and examples, exit 0', async () => {
    const commands = ['region', 'edge', 'dns', 'config', 'up', 'chaos', 'experiment', 'sim'];
    const runs = await Promise.all(commands.map((c) => meridian([c, '--help'])));
    runs.forEach((r, i) => {
      const c = commands[i]!;
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: meridian ${c}`), c);
      assert.match(r.stdout, new RegExp(`examples:\\n {2}meridian ${c}\\b`), c);
      assert.match(r.stdout, /-h, --help/, c);
    });
    const sim = runs[commands.indexOf('sim')]!;
    assert.match(sim.stdout, /--workload NAME .*\|saga/, 'the saga workload is in the help');
  });

  it('an unknown command or option is a usage error: one line, exit 2', async () => {
    const cases = [
      ['no-such-command'],
      ['sim', '--workload', 'saga', '--bogus'],
      ['sim', '--bogus'],
      ['dns', '--config', 'x.yaml', '--bogus'],
      ['sim', '--seeds', '0'],
      ['region', '--config', 'x.yaml'],
    ];
    const runs = await Promise.all(cases.map((c) => meridian(c)));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]!.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '');
    });
    assert.match(runs[1]!.stderr, /^meridian sim: Unknown option '--bogus'/);
    assert.match(runs[4]!.stderr, /^meridian sim: --seeds must be a whole number from 1/);
    assert.match(runs[5]!.stderr, /^meridian region: --region is required/);
  });

  it('a missing config file: one line naming the file, exit 2, in region, edge and dns alike', async () => {
    const missing = join(dir, 'missing.yaml');
    const runs = await Promise.all([
      meridian(['region', '--config', missing, '--region', 'us-east-1']),
      meridian(['edge', '--config', missing, '--edge', 'us-east-1']),
      meridian(['dns', '--config', missing]),
      meridian(['config', 'check', missing]),
    ]);
    for (const [i, name] of ['region', 'edge', 'dns', 'config'].entries()) {
      const r = runs[i]!;
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.equal(r.stderr, `meridian ${name}: ${missing}: cannot read the config file: no such file\n`);
    }
  });

  it('a typo in the config is refused with the key, its path and the closest valid key', async () => {
    const file = configFile('typos.yaml', (raw) => {
      raw.colections = raw.collections;
      delete raw.collections;
      raw.replication = { heartbeatMS: 200 };
    });
    const runs = await Promise.all([
      meridian(['region', '--config', file, '--region', 'us-east-1'], withSecret),
      meridian(['config', 'check', file], withSecret),
    ]);
    for (const [i, name] of ['region', 'config'].entries()) {
      const r = runs[i]!;
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(r.stderr.trimEnd().split('\n').sort(), [
        `meridian ${name}: ${file}: colections: unknown key; did you mean \`collections\`?`,
        `meridian ${name}: ${file}: replication.heartbeatMS: unknown key; did you mean \`heartbeatMs\`?`,
      ]);
    }
  });

  it('edge --edge names --edge for a region the config does not have', async () => {
    const r = await meridian(['edge', '--config', configFile('ok.yaml'), '--edge', 'mars-1'], withSecret);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^meridian edge: --edge: 'mars-1' is not a region in .* \(regions with an edge: us-east-1\)/,
    );
    assert.doesNotMatch(r.stderr, /--region/);
  });

  it('config check prints what it found, and where the secret comes from but not the secret', async () => {
    const file = configFile('check.yaml');
    const ok = await meridian(['config', 'check', file], withSecret);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^${file}: valid\n`));
    assert.match(ok.stdout, /regions +2: us-east-1 \(node, edge\), eu-west-1 \(node\)/);
    assert.match(ok.stdout, /collections +1: settings \(lww, async\)/);
    assert.match(ok.stdout, /store +memory/);
    assert.match(ok.stdout, /clusterSecret: environment variable MERIDIAN_CLUSTER_SECRET/);
    assert.ok(!ok.stdout.includes(SECRET), 'the secret is not printed');
    const unset = await meridian(['config', 'check', file], { MERIDIAN_CLUSTER_SECRET: '' });
    assert.equal(unset.code, 2);
    assert.equal(
      unset.stderr,
      `meridian config: ${file}: secrets.clusterSecret: environment variable MERIDIAN_CLUSTER_SECRET is not set\n`,
    );
  });

  it('sim takes --seed=5 as --seed 5', async () => {
    const args = ['--duration', '1s', '--faults', 'none', '--rate', '50'];
    const [eq, sep] = await Promise.all([
      meridian(['sim', '--seed=5', ...args]),
      meridian(['sim', '--seed', '5', ...args]),
    ]);
    assert.equal(eq.code, 0, eq.stdout + eq.stderr);
    assert.match(eq.stdout, /^meridian sim: seed 5,/);
    assert.equal(eq.stdout, sep.stdout);
  });
});
