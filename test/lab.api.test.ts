/**
 * The lab's dashboard and API over real HTTP: no unauthenticated request is served a secret, the
 * printed login link works once and sets an HttpOnly SameSite=Strict cookie, the API takes that
 * cookie or the admin token as Bearer, and mutations from another site are refused. The lab behind
 * the API is a stand-in (the API's own rules are what is tested; test/lab.e2e.test.ts runs the lot).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type LabApi, startLabApi } from '../src/lab/api.js';
import { SESSION_COOKIE } from '../src/lab/api-auth.js';
import { LabStats } from '../src/lab/stats.js';

const ADMIN = 'admin-token-for-the-api-test-0123456789';

interface Got {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

async function get(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
  body?: string,
): Promise<Got> {
  const res = await request(url, {
    method: method as 'GET',
    headers,
    body,
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
}

describe('lab dashboard sign-in and API authentication', () => {
  let api: LabApi;
  let base: string;
  const traffic: boolean[] = [];
  let cookie = '';

  before(async () => {
    api = await startLabApi(
      {
        stats: new LabStats(),
        state: () => ({ regions: [], traffic: { on: traffic.at(-1) ?? false, ratePerS: 8 } }),
        chaos: async () => 'done',
        setTraffic: (on) => {
          traffic.push(on);
        },
      },
      { host: '127.0.0.1', port: 0, adminToken: ADMIN },
    );
    base = new URL(api.dashboardUrl).origin;
  });
  after(async () => api?.close());

  it('prints a dashboard URL with a login token that is not the admin token', () => {
    const u = new URL(api.dashboardUrl);
    assert.equal(u.pathname, '/');
    const token = u.searchParams.get('token') ?? '';
    assert.match(token, /^[A-Za-z0-9_-]{32,}$/);
    assert.notEqual(token, ADMIN);
  });

  it('serves no secret to an unauthenticated GET', async () => {
    const loginToken = new URL(api.dashboardUrl).searchParams.get('token') ?? '';
    for (const path of ['/', '/index.html', '/api/state', '/api/events', '/api/stream']) {
      const r = await get(`${base}${path}`);
      assert.equal(r.status, 401, path);
      assert.ok(!r.text.includes(ADMIN) && !r.text.includes(loginToken), `${path} leaks a token`);
    }
    const wrong = await get(`${base}/?token=not-the-token`);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
  });

  it('trades the login link once for an HttpOnly SameSite=Strict cookie and redirects to /', async () => {
    const r = await get(api.dashboardUrl);
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const set = String(r.headers['set-cookie']);
    assert.match(set, new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{32,};`));
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    cookie = set.split(';')[0] ?? '';
    const again = await get(api.dashboardUrl);
    assert.equal(again.status, 401, 'the login link works once');
    const page = await get(`${base}/`, { cookie });
    assert.equal(page.status, 200);
    assert.match(page.text, /Meridian/);
    assert.ok(!page.text.includes(ADMIN), 'the page itself carries no token');
    assert.equal((await get(`${base}/api/state`, { cookie })).status, 200);
  });

  it('takes the admin token as Bearer, and as a reusable login link', async () => {
    assert.equal((await get(`${base}/api/state`, { authorization: `Bearer ${ADMIN}` })).status, 200);
    assert.equal((await get(`${base}/api/state`, { authorization: 'Bearer wrong' })).status, 401);
    for (let i = 0; i < 2; i++) assert.equal((await get(`${base}/?token=${ADMIN}`)).status, 303);
  });

  it('does not honour the cookie under another host name (DNS rebinding)', async () => {
    const r = await get(`${base}/api/state`, { cookie, host: 'evil.example:8080' });
    assert.equal(r.status, 401);
  });

  it('refuses mutations from another site, with the cookie or the token', async () => {
    const body = JSON.stringify({ on: false });
    const json = { 'content-type': 'application/json' };
    const n = traffic.length;
    const cases: Record<string, string>[] = [
      { cookie, origin: 'http://evil.example' },
      { cookie, 'sec-fetch-site': 'cross-site' },
      { cookie, 'sec-fetch-site': 'same-site' },
      { authorization: `Bearer ${ADMIN}`, origin: 'http://evil.example' },
    ];
    for (const h of cases) {
      const r = await get(`${base}/api/traffic`, { ...json, ...h }, 'POST', body);
      assert.equal(r.status, 403, JSON.stringify(h));
      assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'cross_site');
    }
    assert.equal(traffic.length, n, 'nothing was changed');
    assert.equal((await get(`${base}/api/traffic`, json, 'POST', body)).status, 401);
    const same = await get(
      `${base}/api/traffic`,
      { ...json, cookie, origin: base, 'sec-fetch-site': 'same-origin' },
      'POST',
      body,
    );
    assert.equal(same.status, 200, same.text);
    const cli = await get(
      `${base}/api/chaos`,
      { ...json, authorization: `Bearer ${ADMIN}` },
      'POST',
      '{"action":"heal"}',
    );
    assert.equal(cli.status, 200, cli.text);
    assert.deepEqual(traffic.slice(n), [false]);
  });
});
