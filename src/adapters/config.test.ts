import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, closestKey, editDistance, loadConfig, parseConfig } from './config.js';

const SECRET = 'a-cluster-secret-of-32-characters';

function base(): Record<string, unknown> {
  return {
    secrets: { clusterSecret: SECRET },
    regions: [
      {
        id: 'us-east-1',
        lat: 38.9,
        lon: -77.4,
        node: { listen: { port: 7070 }, url: 'http://127.0.0.1:7070' },
      },
    ],
  };
}

function problems(raw: unknown, env?: Record<string, string>): string[] {
  try {
    parseConfig(raw, 'c.yaml', env ? { env } : {});
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('strict configuration', () => {
  it('names an unknown key by its path and the closest valid key', () => {
    assert.deepEqual(problems({ ...base(), colections: [] }), [
      'colections: unknown key; did you mean `collections`?',
    ]);
    assert.deepEqual(problems({ ...base(), storee: { kind: 'memory' } }), [
      'storee: unknown key; did you mean `store`?',
    ]);
    assert.deepEqual(problems({ ...base(), replication: { heartbeatMS: 200 } }), [
      'replication.heartbeatMS: unknown key; did you mean `heartbeatMs`?',
    ]);
  });

  it('checks keys inside arrays, unions and nested defaults', () => {
    const raw = base();
    (raw.regions as Record<string, unknown>[])[0]!.nodee = {};
    raw.store = { kind: 'sqlite', dirr: '/tmp' };
    raw.edge = { client: { maxConections: 5 } };
    assert.deepEqual(problems(raw), [
      'regions.0.nodee: unknown key; did you mean `node`?',
      'store.dirr: unknown key; did you mean `dir`?',
      'edge.client.maxConections: unknown key; did you mean `maxConnections`?',
    ]);
  });

  it('lists the valid keys when nothing is close', () => {
    const [p] = problems({ ...base(), dns: { zzzzzzzz: 1 } });
    assert.match(p!, /^dns\.zzzzzzzz: unknown key; valid keys here: listen, zone, names/);
  });

  it('reports every problem at once', () => {
    assert.equal(problems({ ...base(), colections: [], storee: {} }).length, 2);
  });

  it('accepts a config without the lab-only admin token and without cluster', () => {
    const cfg = parseConfig(base());
    assert.equal(cfg.secrets.clusterSecret, SECRET);
    assert.equal(cfg.secrets.adminToken, undefined);
    assert.equal(cfg.store.kind, 'sqlite');
  });
});

describe('secrets from the environment or a file', () => {
  it('reads {env: NAME}', () => {
    const raw = { ...base(), secrets: { clusterSecret: { env: 'MERIDIAN_CLUSTER_SECRET' } } };
    const cfg = parseConfig(raw, 'c.yaml', { env: { MERIDIAN_CLUSTER_SECRET: SECRET } });
    assert.equal(cfg.secrets.clusterSecret, SECRET);
    assert.deepEqual(problems(raw, {}), [
      'secrets.clusterSecret: environment variable MERIDIAN_CLUSTER_SECRET is not set',
    ]);
    assert.deepEqual(problems(raw, { MERIDIAN_CLUSTER_SECRET: 'short' }), [
      'secrets.clusterSecret: use at least 16 characters',
    ]);
  });

  it('reads {file: PATH} relative to the config file, without its trailing newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-config-'));
    writeFileSync(join(dir, 'cluster-secret'), `${SECRET}\n`);
    writeFileSync(
      join(dir, 'm.json'),
      JSON.stringify({
        ...base(),
        secrets: { clusterSecret: { file: 'cluster-secret' }, adminToken: SECRET },
      }),
    );
    const cfg = loadConfig(join(dir, 'm.json'));
    assert.equal(cfg.secrets.clusterSecret, SECRET);
    assert.equal(cfg.secrets.adminToken, SECRET);
    assert.match(
      problems({ ...base(), secrets: { clusterSecret: { file: join(dir, 'nope') } } })[0]!,
      /^secrets\.clusterSecret: cannot read .*nope \(ENOENT\)$/,
    );
  });

  it('refuses anything else as a secret', () => {
    assert.deepEqual(problems({ ...base(), secrets: { clusterSecret: { vault: 'x' } } }), [
      'secrets.clusterSecret: must be a string, {env: VARIABLE} or {file: PATH}',
    ]);
  });
});

describe('loading a file', () => {
  it('names the file for a missing, unparsable or invalid one, one line per problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-config-'));
    const missing = join(dir, 'missing.yaml');
    assert.throws(
      () => loadConfig(missing),
      (e: unknown) =>
        e instanceof ConfigError && e.message === `${missing}: cannot read the config file: no such file`,
    );
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{');
    assert.throws(() => loadConfig(bad), /bad\.json: cannot parse: /);
  });
});

describe('did you mean', () => {
  it('edit distance ignores case and counts edits', () => {
    assert.equal(editDistance('heartbeatMS', 'heartbeatMs'), 0);
    assert.equal(editDistance('colections', 'collections'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
  it('suggests only a close key', () => {
    assert.equal(closestKey('storee', ['store', 'edge']), 'store');
    assert.equal(closestKey('banana', ['store', 'edge']), undefined);
  });
});
