/**
 * Region-to-region routes need the cluster secret however their path is spelled: every spelling a
 * router, proxy or attacker might use (percent-encoding, case, absolute-form, dot segments, repeated
 * slashes, encoded slashes) on every internal route, sent as raw bytes to a real node process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contractCode, head, rawRequest } from './region-raw-http.js';
import { type Cluster, call, startCluster } from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const FORGED_SEQ = 5_000_000;

/** Every way we know to write `path` (which starts with /internal/) so that it might route there. */
export function spellings(path: string): string[] {
  const word = 'internal';
  const rest = path.slice(1 + word.length);
  const out = new Set<string>([path]);
  for (let i = 0; i < word.length; i++) {
    const hex = word.charCodeAt(i).toString(16);
    for (const h of [hex, hex.toUpperCase()]) out.add(`/${word.slice(0, i)}%${h}${word.slice(i + 1)}${rest}`);
  }
  out.add(`/${[...word].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('')}${rest}`);
  out.add(`/%2569nternal${rest}`);
  out.add(`/%49nternal${rest}`);
  out.add(`/INTERNAL${rest}`);
  out.add(`/Internal${rest}`);
  out.add(path.toUpperCase());
  out.add(`http://x${path}`);
  out.add(`HTTP://NODE.TEST${path}`);
  out.add(`https://x:1${path}?a=1`);
  out.add(`http://x/%69nternal${rest}`);
  out.add(`/.${path}`);
  out.add(`/internal/.${rest}`);
  out.add(`/x/..${path}`);
  out.add(`/internal/x/..${rest}`);
  out.add(`/%2e${path}`);
  out.add(`/%2e%2e${path}`);
  out.add(`/${path}`);
  out.add(`/internal/${rest}`);
  out.add(`${path}/`);
  out.add(`${path}//`);
  out.add(`/internal%2F${rest.slice(1)}`);
  out.add(`/internal%2f${rest.slice(1).replaceAll('/', '%2F')}`);
  out.add(`${path}?`);
  out.add(`${path}#x`);
  out.add(`${path};x`);
  out.add(`http://x//%69NTERNAL/./${rest.slice(1).replace('/', '//')}/`);
  out.add(`/%69nternal/./x/..${rest}`);
  return [...out];
}

interface Probe {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

describe('region node: internal routes need the cluster secret under every spelling', {
  timeout: 180_000,
}, () => {
  let c: Cluster;
  const secret = () => c.cfg.secrets.clusterSecret;
  const status = async () =>
    (
      await call(c.url(US), 'GET', '/internal/v1/status', {
        headers: { authorization: `Bearer ${secret()}` },
      })
    ).json as { stats: { peers: Record<string, { acked: Record<string, number> }> } };

  before(async () => {
    c = await startCluster({ store: 'memory' });
  });
  after(async () => {
    await c?.stop();
  });

  it('answers 401 or 404 in the contract shape, and nothing changes', async () => {
    const ackedBefore = (await status()).stats.peers[EU]!.acked[US] ?? 0;
    const forgedAck = JSON.stringify({ region: EU, applied: { [US]: FORGED_SEQ } });
    const probes: Probe[] = [
      { name: 'stream', method: 'GET', path: '/internal/v1/stream', headers: { 'meridian-peer': EU } },
      {
        name: 'stream (head)',
        method: 'HEAD',
        path: '/internal/v1/stream',
        headers: { 'meridian-peer': EU },
      },
      { name: 'ack', method: 'POST', path: '/internal/v1/ack', body: forgedAck },
      { name: 'status', method: 'GET', path: '/internal/v1/status' },
      { name: 'status (head)', method: 'HEAD', path: '/internal/v1/status' },
      { name: 'unknown', method: 'GET', path: '/internal/v1/nothing-here' },
      { name: 'unknown (post)', method: 'POST', path: '/internal/v2/ack', body: forgedAck },
      {
        name: 'account open',
        method: 'POST',
        path: '/internal/accounts/forged/open',
        body: JSON.stringify({ balance: 1_000_000 }),
      },
      {
        name: 'account apply',
        method: 'POST',
        path: '/internal/accounts/forged/apply',
        headers: { 'idempotency-key': 'forged-1' },
        body: JSON.stringify({ delta: 1_000_000 }),
      },
    ];
    const auths: [string, Record<string, string>][] = [
      ['no authorization', {}],
      ['a wrong secret', { authorization: 'Bearer wrong-secret-wrong-secret-wrong' }],
      ['basic auth', { authorization: 'Basic Zm9vOmJhcg==' }],
    ];
    let sent = 0;
    const leaks: string[] = [];
    // Twenty leaks say enough (an open stream costs its 3 s cut each).
    probing: for (const p of probes) {
      for (const target of spellings(p.path)) {
        for (const [authName, auth] of auths) {
          if (leaks.length >= 20) break probing;
          const r = await rawRequest(c.url(US), head(p.method, target, { ...p.headers, ...auth }, p.body), {
            maxMs: 3000,
          });
          sent++;
          const shapeOk = p.method === 'HEAD' || contractCode(r.body) !== undefined;
          if (![401, 404].includes(r.status) || !shapeOk) {
            leaks.push(`${p.name} ${p.method} ${target} (${authName}): ${r.status} ${r.body.slice(0, 120)}`);
          }
        }
      }
    }
    assert.deepEqual(leaks, [], `${leaks.length} of ${sent} probes answered otherwise`);
    const ackedAfter = (await status()).stats.peers[EU]!.acked[US] ?? 0;
    assert.equal(ackedAfter, ackedBefore, 'a forged ack changed what the node thinks eu-west-1 has');
    assert.ok(ackedAfter < FORGED_SEQ);
    const forged = await call(c.url(US), 'GET', '/v1/accounts/forged');
    assert.equal(forged.status, 404, 'a forged account open created money');
  });

  it('with the secret, the routes answer under the spellings the router matches', async () => {
    const auth = { authorization: `Bearer ${secret()}` };
    for (const target of ['/internal/v1/status', 'http://x/internal/v1/status', '/%69nternal/v1/status']) {
      const r = await rawRequest(c.url(US), head('GET', target, auth));
      assert.equal(r.status, 200, `${target}: ${r.body.slice(0, 200)}`);
      assert.ok((JSON.parse(r.body) as { stats?: unknown }).stats, target);
    }
    // The router has no route for these spellings, secret or not: 404, not a guess at what was meant.
    for (const target of ['/internal/v1/status/', '//internal/v1/status', '/./internal/v1/status']) {
      const r = await rawRequest(c.url(US), head('GET', target, auth));
      assert.equal(r.status, 404, target);
      assert.equal(contractCode(r.body), 'not_found', target);
    }
  });
});
