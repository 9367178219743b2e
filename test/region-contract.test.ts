/**
 * Three real region nodes on loopback, one process each, exercising every row of the HTTP contract
 * (DESIGN.md) once per store: SQLite and PostgreSQL (MERIDIAN_TEST_STORES=memory,... to choose).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { openStore } from '../src/adapters/open-store.js';
import { decodeToken, encodeToken } from '../src/core/version.js';
import {
  type CallResult,
  type Cluster,
  call,
  eventually,
  keyHomedIn,
  type StoreKind,
  startCluster,
} from './support/cluster.js';
import { needService } from './support/services.js';

const STORES = (process.env.MERIDIAN_TEST_STORES ?? 'sqlite,postgres').split(',') as StoreKind[];
const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

function errorCode(r: CallResult): string | undefined {
  return (r.json as { error?: { code?: string } } | undefined)?.error?.code;
}

function seq(r: CallResult, origin: string): number {
  return decodeToken(r.headers['meridian-version']!)[origin] ?? 0;
}

/** Every answer names its region and carries a decodable version token. */
function assertMeridianHeaders(r: CallResult, region: string): void {
  assert.equal(r.headers['meridian-region'], region, 'Meridian-Region');
  assert.ok(r.headers['meridian-version'], 'Meridian-Version present');
  decodeToken(r.headers['meridian-version']!);
}

for (const store of STORES) {
  describe(`region node contract (${store})`, { timeout: 180_000 }, () => {
    let c: Cluster;
    let skip = false;
    const at = (r: string) => c.url(r);

    before(async (t) => {
      if (store === 'postgres' && !(await needService(t as never, 'postgres'))) {
        skip = true;
        return;
      }
      // Generous waits: a loaded CI machine can delay replication by seconds; the tests that need a
      // short wait set Meridian-Max-Wait-Ms themselves.
      c = await startCluster({ store, node: { syncTimeoutMs: 3000, maxWaitMs: 15_000 } });
    });
    after(async () => {
      await c?.stop();
    });

    it('PUT, GET and DELETE a document, with Meridian-Region and Meridian-Version', async (t) => {
      if (skip) return t.skip('postgres not available');
      const put = await call(at(US), 'PUT', '/v1/settings/theme', { body: { dark: true } });
      assert.equal(put.status, 200);
      assertMeridianHeaders(put, US);
      const body = put.json as { key: string; value: unknown; version: string };
      assert.deepEqual({ key: body.key, value: body.value }, { key: 'theme', value: { dark: true } });
      assert.equal(body.version, put.headers['meridian-version']);
      assert.ok(seq(put, US) >= 1);

      const get = await call(at(US), 'GET', '/v1/settings/theme');
      assert.equal(get.status, 200);
      assert.deepEqual((get.json as { value: unknown }).value, { dark: true });
      assertMeridianHeaders(get, US);

      const del = await call(at(US), 'DELETE', '/v1/settings/theme');
      assert.equal(del.status, 200);
      assert.ok(seq(del, US) > seq(put, US));
      const gone = await call(at(US), 'GET', '/v1/settings/theme');
      assert.equal(gone.status, 404);
      assert.equal(errorCode(gone), 'not_found');
      assertMeridianHeaders(gone, US);
    });

    it('counters merge increments from every region; sets answer sorted members', async (t) => {
      if (skip) return t.skip('postgres not available');
      const a = await call(at(US), 'POST', '/v1/likes/post1/increment', { body: { by: 2 } });
      const b = await call(at(EU), 'POST', '/v1/likes/post1/increment', { body: { by: 3 } });
      const d = await call(at(AP), 'POST', '/v1/likes/post1/increment', { body: { by: -1 } });
      assert.deepEqual([a.status, b.status, d.status], [200, 200, 200]);
      assert.equal((a.json as { value: number }).value, 2);
      const token = encodeToken({ [US]: seq(a, US), [EU]: seq(b, EU), [AP]: seq(d, AP) });
      for (const r of [US, EU, AP]) {
        const g = await call(at(r), 'GET', '/v1/likes/post1', { headers: { 'meridian-min-version': token } });
        assert.equal(g.status, 200);
        assert.equal((g.json as { value: number }).value, 4, `counter at ${r}`);
      }
      const add = await call(at(US), 'POST', '/v1/tags/doc1/add', {
        body: { members: ['zeta', 'alpha', 'mid'] },
      });
      assert.equal(add.status, 200);
      assert.deepEqual((add.json as { value: string[] }).value, ['alpha', 'mid', 'zeta']);
      const rm = await call(at(US), 'POST', '/v1/tags/doc1/remove', { body: { members: ['mid'] } });
      assert.deepEqual((rm.json as { value: string[] }).value, ['alpha', 'zeta']);
      const g = await call(at(EU), 'GET', '/v1/tags/doc1', {
        headers: { 'meridian-min-version': rm.headers['meridian-version']! },
      });
      assert.deepEqual((g.json as { value: string[] }).value, ['alpha', 'zeta']);
      // DELETE empties a set; a counter cannot be deleted.
      const cleared = await call(at(US), 'DELETE', '/v1/tags/doc1');
      assert.equal(cleared.status, 200);
      assert.deepEqual((cleared.json as { value: string[] }).value, []);
      const noDelete = await call(at(US), 'DELETE', '/v1/likes/post1');
      assert.equal(noDelete.status, 405);
      assert.equal(errorCode(noDelete), 'wrong_policy');
    });

    it('Meridian-Version on every answer is merged with the token sent', async (t) => {
      if (skip) return t.skip('postgres not available');
      const sent = encodeToken({ [AP]: 987_654 });
      for (const path of ['/healthz', '/v1/settings/nope', '/v1/nosuch/x']) {
        const r = await call(at(US), 'GET', path, { headers: { 'meridian-version': sent } });
        assertMeridianHeaders(r, US);
        assert.equal(seq(r, AP), 987_654, `merged token on ${path}`);
      }
    });

    it('Meridian-Min-Version: a read in another region waits for the write (read-your-writes)', async (t) => {
      if (skip) return t.skip('postgres not available');
      const put = await call(at(US), 'PUT', '/v1/settings/ryw', { body: 'v1' });
      const token = put.headers['meridian-version']!;
      for (const r of [EU, AP]) {
        const g = await call(at(r), 'GET', '/v1/settings/ryw', {
          headers: { 'meridian-min-version': token },
        });
        assert.equal(g.status, 200);
        assert.equal((g.json as { value: string }).value, 'v1');
        assert.ok(seq(g, US) >= seq(put, US));
      }
    });

    it('Meridian-Min-Version not reachable in time: 503 with Meridian-Replay after Meridian-Max-Wait-Ms', async (t) => {
      if (skip) return t.skip('postgres not available');
      const token = encodeToken({ [US]: 10_000_000 });
      const t0 = Date.now();
      const r = await call(at(EU), 'GET', '/v1/settings/ryw', {
        headers: { 'meridian-min-version': token, 'meridian-max-wait-ms': '200' },
      });
      const elapsed = Date.now() - t0;
      assert.equal(r.status, 503);
      assert.equal(errorCode(r), 'not_caught_up');
      assert.equal(r.headers['meridian-replay'], `region=${US}`);
      assert.ok(elapsed >= 190 && elapsed < 5000, `waited ${elapsed} ms`);
    });

    it('pinned: a new key is homed by the rule every region applies, whatever Meridian-Home-Region says; elsewhere 421 naming it', async (t) => {
      if (skip) return t.skip('postgres not available');
      const alice = keyHomedIn('profiles', US, 'alice');
      // Sent to eu-west-1: refused there, naming the home, with or without the header; nothing stored.
      for (const headers of [{ 'meridian-home-region': US }, {}] as Record<string, string>[]) {
        const miss = await call(at(EU), 'PUT', `/v1/profiles/${alice}`, { body: { name: 'Alice' }, headers });
        assert.equal(miss.status, 421);
        assert.equal(errorCode(miss), 'misdirected');
        assert.equal(miss.headers['meridian-replay'], `region=${US}`);
      }
      assert.equal((await call(at(EU), 'GET', `/v1/profiles/${alice}`)).status, 404);

      // A header naming another region does not move the home (two regions could then both take
      // the key's first write): the home takes it.
      const first = await call(at(US), 'PUT', `/v1/profiles/${alice}`, {
        body: { name: 'Alice' },
        headers: { 'meridian-home-region': EU },
      });
      assert.equal(first.status, 200);
      const token = first.headers['meridian-version']!;
      const elsewhere = await call(at(EU), 'PUT', `/v1/profiles/${alice}`, {
        body: { name: 'Mallory' },
        headers: { 'meridian-min-version': token },
      });
      assert.equal(elsewhere.status, 421);
      assert.equal(elsewhere.headers['meridian-replay'], `region=${US}`);
      const del = await call(at(AP), 'DELETE', `/v1/profiles/${alice}`, {
        headers: { 'meridian-min-version': token },
      });
      assert.equal(del.status, 421);
      // Reads are served everywhere.
      const read = await call(at(EU), 'GET', `/v1/profiles/${alice}`, {
        headers: { 'meridian-min-version': token },
      });
      assert.deepEqual((read.json as { value: unknown }).value, { name: 'Alice' });

      // No header: the receiving region does not become home either.
      const bob = keyHomedIn('profiles', AP, 'bob');
      const fromUs = await call(at(US), 'PUT', `/v1/profiles/${bob}`, { body: { name: 'B' } });
      assert.equal(fromUs.status, 421);
      assert.equal(fromUs.headers['meridian-replay'], `region=${AP}`);
      assert.equal((await call(at(AP), 'PUT', `/v1/profiles/${bob}`, { body: { name: 'Bob' } })).status, 200);
      const bad = await call(at(US), 'PUT', '/v1/profiles/carol', {
        body: 1,
        headers: { 'meridian-home-region': 'mars-1' },
      });
      assert.equal(bad.status, 400);
    });

    it('residency: 421 outside the allowed regions, and the data never reaches their stores', async (t) => {
      if (skip) return t.skip('postgres not available');
      for (const [method, body] of [
        ['PUT', { secret: 1 }],
        ['GET', undefined],
      ] as const) {
        const r = await call(at(US), method, '/v1/eu-profiles/hans', { body });
        assert.equal(r.status, 421, `${method} outside residency`);
        assert.equal(r.headers['meridian-replay'], `region=${EU}`);
      }
      const put = await call(at(EU), 'PUT', '/v1/eu-profiles/hans', { body: { iban: 'DE-SECRET-IBAN' } });
      assert.equal(put.status, 200);
      const euSeq = seq(put, EU);
      // The other regions apply the change's sequence (as a withheld placeholder) ...
      for (const r of [US, AP]) {
        await eventually(`${r} to pass eu seq ${euSeq}`, async () => {
          const h = await call(at(r), 'GET', '/healthz');
          return seq(h, EU) >= euSeq;
        });
      }
      // ... but the stream they receive carries no collection, key or value,
      const line = await firstChangesLine(c, EU, US, { [EU]: euSeq - 1 });
      assert.ok(!line.includes('DE-SECRET-IBAN') && !line.includes('hans'), line);
      assert.ok(line.includes('"withheld"'));
      // ... and their stores hold nothing of it.
      if (store !== 'memory') {
        for (const r of [US, AP]) {
          const s = await openStore(c.cfg, r);
          try {
            const snap = await s.snapshot();
            assert.equal(snap.docs.filter((d) => d.collection === 'eu-profiles').length, 0, `${r} docs`);
            const log = JSON.stringify(await s.readLog({}, 1_000_000));
            assert.ok(
              !log.includes('DE-SECRET-IBAN') && !log.includes('hans'),
              `${r} log holds resident data`,
            );
          } finally {
            await s.close();
          }
        }
      }
    });

    it('bad input: 400/404/405/413/415 with JSON errors, and nothing stored', async (t) => {
      if (skip) return t.skip('postgres not available');
      const before = seq(await call(at(US), 'GET', '/healthz'), US);
      const cases: [string, () => Promise<CallResult>, number, string][] = [
        [
          'malformed JSON',
          () =>
            call(at(US), 'PUT', '/v1/settings/bad', {
              raw: '{"a":',
              headers: { 'content-type': 'application/json' },
            }),
          400,
          'bad_json',
        ],
        [
          'empty JSON body',
          () =>
            call(at(US), 'PUT', '/v1/settings/bad', {
              raw: '',
              headers: { 'content-type': 'application/json' },
            }),
          400,
          'bad_json',
        ],
        ['no body', () => call(at(US), 'PUT', '/v1/settings/bad'), 400, 'bad_json'],
        [
          'unknown collection',
          () => call(at(US), 'PUT', '/v1/nosuch/bad', { body: 1 }),
          404,
          'unknown_collection',
        ],
        ['unknown collection read', () => call(at(US), 'GET', '/v1/nosuch/bad'), 404, 'unknown_collection'],
        [
          'increment on lww',
          () => call(at(US), 'POST', '/v1/settings/bad/increment', { body: { by: 1 } }),
          405,
          'wrong_policy',
        ],
        ['PUT on a counter', () => call(at(US), 'PUT', '/v1/likes/bad', { body: 1 }), 405, 'wrong_policy'],
        [
          'add on a counter',
          () => call(at(US), 'POST', '/v1/likes/bad/add', { body: { members: ['x'] } }),
          405,
          'wrong_policy',
        ],
        [
          'POST on a document',
          () => call(at(US), 'POST', '/v1/settings/bad', { body: 1 }),
          405,
          'wrong_policy',
        ],
        [
          'body over 1 MiB',
          () => call(at(US), 'PUT', '/v1/settings/bad', { body: 'x'.repeat(1024 * 1024 + 10) }),
          413,
          'too_large',
        ],
        [
          'not JSON',
          () =>
            call(at(US), 'PUT', '/v1/settings/bad', {
              raw: 'hello',
              headers: { 'content-type': 'text/plain' },
            }),
          415,
          'unsupported_media_type',
        ],
        [
          'key over 512 bytes',
          () => call(at(US), 'PUT', `/v1/settings/${'k'.repeat(513)}`, { body: 1 }),
          400,
          'bad_key',
        ],
        [
          'key of 2-byte chars over 512 bytes',
          () => call(at(US), 'PUT', `/v1/settings/${encodeURIComponent('é'.repeat(257))}`, { body: 1 }),
          400,
          'bad_key',
        ],
        [
          'key with a control character',
          () => call(at(US), 'PUT', '/v1/settings/a%01b', { body: 1 }),
          400,
          'bad_key',
        ],
        ['key with a NUL', () => call(at(US), 'PUT', '/v1/settings/a%00b', { body: 1 }), 400, 'bad_key'],
        [
          'bad token',
          () =>
            call(at(US), 'PUT', '/v1/settings/bad', {
              body: 1,
              headers: { 'meridian-version': 'not a token!' },
            }),
          400,
          'bad_token',
        ],
        [
          'bad min-version token',
          () =>
            call(at(US), 'GET', '/v1/settings/bad', { headers: { 'meridian-min-version': 'eyJmIjoyfQ' } }),
          400,
          'bad_token',
        ],
        [
          'bad max-wait',
          () =>
            call(at(US), 'GET', '/v1/settings/bad', {
              headers: { 'meridian-min-version': encodeToken({}), 'meridian-max-wait-ms': 'soon' },
            }),
          400,
          'bad_request',
        ],
        [
          'increment by a fraction',
          () => call(at(US), 'POST', '/v1/likes/bad/increment', { body: { by: 1.5 } }),
          400,
          'bad_request',
        ],
        [
          'increment with extra fields',
          () => call(at(US), 'POST', '/v1/likes/bad/increment', { body: { by: 1, x: 2 } }),
          400,
          'bad_request',
        ],
        [
          'members not strings',
          () => call(at(US), 'POST', '/v1/tags/bad/add', { body: { members: [1] } }),
          400,
          'bad_request',
        ],
        [
          'members empty',
          () => call(at(US), 'POST', '/v1/tags/bad/add', { body: { members: [] } }),
          400,
          'bad_request',
        ],
        [
          'unknown operation',
          () => call(at(US), 'POST', '/v1/likes/bad/multiply', { body: { by: 2 } }),
          404,
          'not_found',
        ],
      ];
      for (const [name, run, status, code] of cases) {
        const r = await run();
        assert.equal(r.status, status, `${name}: ${r.text.slice(0, 200)}`);
        assert.equal(errorCode(r), code, name);
        assert.equal(typeof (r.json as { error: { message: unknown } }).error.message, 'string', name);
        assertMeridianHeaders(r, US);
      }
      const after = seq(await call(at(US), 'GET', '/healthz'), US);
      assert.equal(after, before, 'no bad request committed anything');
      for (const path of ['/v1/settings/bad', '/v1/likes/bad', '/v1/tags/bad']) {
        assert.equal((await call(at(US), 'GET', path)).status, 404, path);
      }
    });

    it('internal routes: 401 without the cluster secret, and nothing changes', async (t) => {
      if (skip) return t.skip('postgres not available');
      const statusOf = async () =>
        (
          await call(at(US), 'GET', '/internal/v1/status', {
            headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}` },
          })
        ).json as { stats: { peers: Record<string, { acked: Record<string, number> }> } };
      const beforeAcks = (await statusOf()).stats.peers[EU]!.acked;
      const attempts: [string, 'GET' | 'POST', string, Record<string, string>][] = [
        ['stream, no auth', 'GET', '/internal/v1/stream', { 'meridian-peer': EU }],
        [
          'stream, wrong secret',
          'GET',
          '/internal/v1/stream',
          { 'meridian-peer': EU, authorization: 'Bearer wrong-secret-wrong-secret' },
        ],
        ['status, no auth', 'GET', '/internal/v1/status', {}],
        ['unknown internal path', 'GET', '/internal/v1/nothing-here', {}],
      ];
      for (const [name, method, path, headers] of attempts) {
        const r = await call(at(US), method, path, { headers });
        assert.equal(r.status, 401, name);
        assert.equal(errorCode(r), 'unauthorized', name);
      }
      const forged = await call(at(US), 'POST', '/internal/v1/ack', {
        body: { region: EU, applied: { [US]: 9_999_999 } },
        headers: { authorization: 'Basic Zm9vOmJhcg==' },
      });
      assert.equal(forged.status, 401);
      assert.deepEqual((await statusOf()).stats.peers[EU]!.acked[US] ?? 0, beforeAcks[US] ?? 0);
      assert.ok(((await statusOf()).stats.peers[EU]!.acked[US] ?? 0) < 9_999_999);
    });

    it('/healthz and /metrics', async (t) => {
      if (skip) return t.skip('postgres not available');
      const h = await call(at(EU), 'GET', '/healthz');
      assert.equal(h.status, 200);
      assert.deepEqual(h.json, { region: EU, status: 'ok' });
      const m = await call(at(EU), 'GET', '/metrics');
      assert.equal(m.status, 200);
      for (const name of [
        'meridian_http_requests_total',
        'meridian_http_request_duration_seconds_bucket',
        'meridian_replication_lag_ms{',
        'meridian_replication_lag_changes{',
        'meridian_replication_lag_observed_ms{',
        'meridian_replication_apply_lag_ms_bucket{',
        'meridian_applied_seq{',
        'meridian_conflicts_total',
        'meridian_peer_unacked_changes{',
      ]) {
        assert.ok(m.text.includes(name), `metrics include ${name}`);
      }
      assert.match(m.text, new RegExp(`meridian_replication_stream_connected\\{[^}]*peer="${US}"[^}]*\\} 1`));
    });

    it('sync (majority): 200 once a peer acknowledged; 504 with an indefinite outcome when none can', async (t) => {
      if (skip) return t.skip('postgres not available');
      const acct1 = keyHomedIn('accounts', US, 'acct1-');
      const acct2 = keyHomedIn('accounts', US, 'acct2-');
      const ok = await call(at(US), 'PUT', `/v1/accounts/${acct1}`, { body: { balance: 100 } });
      assert.equal(ok.status, 200, ok.text);
      // The acknowledgement means a peer has it durably: it reads there without waiting.
      const seen = await Promise.all(
        [EU, AP].map((r) =>
          call(at(r), 'GET', `/v1/accounts/${acct1}`, { headers: { 'meridian-max-wait-ms': '0' } }),
        ),
      );
      assert.ok(
        seen.some((r) => r.status === 200),
        'at least one peer holds the acknowledged write',
      );

      await c.kill(EU);
      await c.kill(AP);
      const t0 = Date.now();
      const lost = await call(at(US), 'PUT', `/v1/accounts/${acct2}`, { body: { balance: 5 } });
      assert.equal(lost.status, 504, lost.text);
      const err = (lost.json as { error: { code: string; indefinite: boolean; message: string } }).error;
      assert.equal(err.code, 'sync_timeout');
      assert.equal(err.indefinite, true);
      assert.match(err.message, /will replicate/);
      assert.ok(Date.now() - t0 >= 2900, 'waited for the sync timeout');
      // Committed locally: it replicates once the peers are back.
      await c.restart(EU);
      await c.restart(AP);
      const g = await call(at(EU), 'GET', `/v1/accounts/${acct2}`, {
        headers: {
          'meridian-min-version': lost.headers['meridian-version']!,
          'meridian-max-wait-ms': '10000',
        },
      });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual((g.json as { value: unknown }).value, { balance: 5 });
    });
  });
}

/** Opens a replication stream from `from` as if we were `as`, and returns the first `changes` line. */
async function firstChangesLine(
  c: Cluster,
  from: string,
  as: string,
  have: Record<string, number>,
): Promise<string> {
  const ac = new AbortController();
  const res = await request(`${c.url(from)}/internal/v1/stream?have=${encodeToken(have)}`, {
    headers: { authorization: `Bearer ${c.cfg.secrets.clusterSecret}`, 'meridian-peer': as },
    signal: ac.signal,
  });
  assert.equal(res.statusCode, 200);
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += (chunk as Buffer).toString('utf8');
      for (const line of buf.split('\n')) if (line.startsWith('{"t":"changes"')) return line;
    }
  } finally {
    ac.abort();
    res.body.destroy();
  }
  throw new Error('stream ended without changes');
}
