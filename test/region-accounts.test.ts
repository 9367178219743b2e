/**
 * Money cannot be made by a /v1 client: `accounts` is declared `writableBy: sagas`, so PUT and
 * DELETE are 403 read_only; accounts are opened with a configured balance; transfers (sagas) still
 * move money; and the lab's traffic generator gets its accounts the supported way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadRegionTable } from '../src/adapters/region-table.js';
import type { LabRegion } from '../src/lab/plan.js';
import { LabStats, type RequestSample } from '../src/lab/stats.js';
import { TrafficGenerator } from '../src/lab/traffic.js';
import { contractCode } from './region-raw-http.js';
import {
  type Cluster,
  call,
  eventually,
  keyHomedIn,
  LAB_COLLECTIONS,
  startCluster,
} from './support/cluster.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';
const OPENING = 100;
// Keys homed where the tests need them: a new key's home is the rule every region applies.
const ALICE = keyHomedIn('accounts', US, 'alice');
const BOB = keyHomedIn('accounts', AP, 'bob');
const P1 = keyHomedIn('profiles', US, 'p');

const collections = LAB_COLLECTIONS.map((c) => (c.name === 'accounts' ? { ...c, writableBy: 'sagas' } : c));

async function balance(c: Cluster, region: string, key: string): Promise<number | undefined> {
  const r = await call(c.url(region), 'GET', `/v1/accounts/${key}`);
  return r.status === 200 ? (r.json as { value: { balance: number } }).value.balance : undefined;
}

class RecordingStats extends LabStats {
  readonly samples: RequestSample[] = [];
  override record(s: RequestSample): void {
    this.samples.push(s);
    super.record(s);
  }
}

describe('region node: accounts are read-only to /v1 clients', { timeout: 180_000 }, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'memory', collections, node: { accountOpeningBalance: OPENING } });
  });
  after(async () => {
    await c?.stop();
  });

  it('PUT and DELETE of an account are 403 read_only and store nothing; GET still reads', async () => {
    const attempts = [
      await call(c.url(US), 'PUT', '/v1/accounts/mint', { body: { balance: 1_000_000 } }),
      await call(c.url(US), 'PUT', '/v1/accounts/mint', {
        body: { balance: 1_000_000 },
        headers: { 'meridian-home-region': US, 'idempotency-key': 'mint-1' },
      }),
      await call(c.url(EU), 'DELETE', '/v1/accounts/mint'),
    ];
    for (const r of attempts) {
      assert.equal(r.status, 403, r.text);
      assert.equal(contractCode(r.text), 'read_only');
    }
    assert.equal((await call(c.url(US), 'GET', '/v1/accounts/mint')).status, 404);
    // Other collections are unaffected.
    assert.equal((await call(c.url(US), 'PUT', `/v1/profiles/${P1}`, { body: { n: 1 } })).status, 200);
  });

  it('an account opens once with the configured balance, and transfers move money between accounts', async () => {
    const first = await call(c.url(US), 'POST', `/v1/accounts/${ALICE}/open`);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json, { key: ALICE, balance: OPENING, opened: true });
    assert.equal((await call(c.url(AP), 'POST', `/v1/accounts/${BOB}/open`)).status, 200);
    const transfer = await call(c.url(EU), 'POST', '/v1/sagas/transfer', {
      body: { from: ALICE, to: BOB, amount: 30 },
      headers: { 'idempotency-key': 'ro-t1' },
    });
    assert.equal(transfer.status, 202, transfer.text);
    const id = (transfer.json as { id: string }).id;
    await eventually('the transfer completes', async () => {
      const s = await call(c.url(EU), 'GET', `/v1/sagas/${id}`);
      return (s.json as { status?: string }).status === 'completed';
    });
    assert.equal(await balance(c, US, ALICE), OPENING - 30);
    assert.equal(await balance(c, AP, BOB), OPENING + 30);
    // Opening again never resets a balance; elsewhere it points at the account's home.
    const again = await call(c.url(US), 'POST', `/v1/accounts/${ALICE}/open`, {
      headers: { 'content-type': 'application/json' },
    });
    assert.deepEqual(again.json, { key: ALICE, balance: OPENING - 30, opened: false });
    const elsewhere = await eventually(`eu-west-1 knows ${ALICE}`, async () => {
      const r = await call(c.url(EU), 'POST', `/v1/accounts/${ALICE}/open`);
      return r.status === 421 ? r : undefined;
    });
    assert.equal(elsewhere.headers['meridian-replay'], `region=${US}`);
    assert.equal(await balance(c, US, ALICE), OPENING - 30);
  });

  it('the lab traffic generator opens its accounts and transfers without writing accounts directly', async () => {
    const table = loadRegionTable();
    const edges: LabRegion[] = c.regions.map((id, i) => {
      const url = c.url(id);
      return { ...table.get(id), index: i + 1, host: new URL(url).hostname, nodeUrl: url, edgeUrl: url };
    });
    const stats = new RecordingStats();
    const gen = new TrafficGenerator({
      ratePerS: 150,
      users: 20,
      liveEdges: () => edges,
      stats,
      hasEuProfiles: true,
      euRegions: [EU],
    });
    gen.start();
    // Until the generator has started a transfer, or been refused a write (which would never stop).
    const started = () => stats.samples.some((s) => s.op === 'transfer' && s.status === 202);
    const deadline = Date.now() + 30_000;
    try {
      while (!started() && !stats.samples.some((s) => s.status === 403) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await gen.stop();
    }
    const refused = stats.samples.filter((s) => s.status === 403);
    assert.equal(
      refused.length,
      0,
      `the generator was refused writes to a read-only collection: ${JSON.stringify(refused.slice(0, 3))}`,
    );
    assert.ok(started(), 'the generator started a transfer');
    let opened = 0;
    for (const r of c.regions) {
      const sum = (await call(c.url(r), 'GET', '/v1/sagas')).json as { money: { accounts: number } };
      opened += sum.money.accounts;
    }
    assert.ok(opened > 2, `the generator opened accounts (${opened} in all)`);
  });
});
