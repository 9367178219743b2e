import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Cluster, call, eventually, keyHomedIn, startCluster } from './support/cluster.js';

// Account keys homed where the tests need them: a new key's home is the rule every region applies.
const ALICE = keyHomedIn('accounts', 'us-east-1', 'alice');
const BOB = keyHomedIn('accounts', 'ap-northeast-1', 'bob');
const CAROL = keyHomedIn('accounts', 'us-east-1', 'carol');
const DAVE = keyHomedIn('accounts', 'ap-northeast-1', 'dave');

type Saga = { id: string; status: string; steps: { name: string; status: string; error?: string }[] };

async function openAccount(c: Cluster, region: string, key: string, balance: number): Promise<void> {
  const r = await call(c.url(region), 'PUT', `/v1/accounts/${key}`, {
    body: { balance },
  });
  assert.equal(r.status, 200, r.text);
}

async function balance(c: Cluster, region: string, key: string): Promise<number> {
  const r = await call(c.url(region), 'GET', `/v1/accounts/${key}`);
  return (r.json as { value: { balance: number } }).value.balance;
}

async function settled(c: Cluster, region: string, id: string, timeoutMs = 15_000): Promise<Saga> {
  return eventually(
    `saga ${id} settles`,
    async () => {
      const r = await call(c.url(region), 'GET', `/v1/sagas/${id}`);
      const s = r.json as Saga;
      return r.status === 200 && ['completed', 'compensated', 'stuck'].includes(s.status) ? s : undefined;
    },
    timeoutMs,
  );
}

function transfer(c: Cluster, region: string, key: string, body: unknown, query = '') {
  return call(c.url(region), 'POST', `/v1/sagas/transfer${query}`, {
    body,
    headers: { 'idempotency-key': key },
  });
}

describe('transfer sagas over HTTP', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'memory', mode: 'inprocess' });
    await openAccount(c, 'us-east-1', ALICE, 100);
    await openAccount(c, 'ap-northeast-1', BOB, 100);
    // The coordinator finds homes from replicated documents or by following 421s.
  });
  after(async () => {
    await c?.stop();
  });

  it('requires an Idempotency-Key, and refuses bad input and unknown types', async () => {
    const r = await call(c.url('eu-west-1'), 'POST', '/v1/sagas/transfer', {
      body: { from: ALICE, to: BOB, amount: 1 },
    });
    assert.equal(r.status, 400);
    assert.equal(
      (await transfer(c, 'eu-west-1', 'bad-1', { from: ALICE, to: ALICE, amount: 1 })).status,
      400,
    );
    assert.equal((await transfer(c, 'eu-west-1', 'bad-2', { from: ALICE, to: BOB, amount: -1 })).status, 400);
    const u = await call(c.url('eu-west-1'), 'POST', '/v1/sagas/nope', {
      body: {},
      headers: { 'idempotency-key': 'x' },
    });
    assert.equal(u.status, 404);
    assert.equal((await call(c.url('eu-west-1'), 'GET', '/v1/sagas/sg_missing')).status, 404);
  });

  it('debits in one home region and credits in another (202, then completed), once per key', async () => {
    const a = await transfer(c, 'eu-west-1', 't-1', { from: ALICE, to: BOB, amount: 30 });
    assert.equal(a.status, 202, a.text);
    const { id, status } = a.json as { id: string; status: string };
    assert.equal(status, 'running');
    const again = await transfer(c, 'eu-west-1', 't-1', { from: ALICE, to: BOB, amount: 30 });
    assert.equal(again.status, 202);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal((again.json as { id: string }).id, id);
    const s = await settled(c, 'eu-west-1', id);
    assert.equal(s.status, 'completed');
    assert.deepEqual(
      s.steps.map((x) => [x.name, x.status]),
      [
        ['debit', 'done'],
        ['credit', 'done'],
      ],
    );
    assert.equal(await balance(c, 'us-east-1', ALICE), 70);
    assert.equal(await balance(c, 'ap-northeast-1', BOB), 130);
  });

  it('refuses a debit over the balance: nothing to undo, compensated', async () => {
    const a = await transfer(c, 'us-east-1', 't-2', { from: ALICE, to: BOB, amount: 1000 });
    const s = await settled(c, 'us-east-1', (a.json as { id: string }).id);
    assert.equal(s.status, 'compensated');
    assert.equal(s.steps[0]!.status, 'failed');
    assert.match(s.steps[0]!.error ?? '', /insufficient_funds/);
    assert.equal(await balance(c, 'us-east-1', ALICE), 70);
  });

  it('refunds the source when the credit fails', async () => {
    const a = await transfer(c, 'ap-northeast-1', 't-3', { from: ALICE, to: 'nobody', amount: 20 });
    const s = await settled(c, 'ap-northeast-1', (a.json as { id: string }).id);
    assert.equal(s.status, 'compensated');
    assert.deepEqual(
      s.steps.map((x) => x.status),
      ['compensated', 'failed'],
    );
    assert.equal(await balance(c, 'us-east-1', ALICE), 70);
  });

  it('runs by choreography: each home region takes its step from the replicated saga record', async () => {
    const a = await transfer(
      c,
      'us-east-1',
      't-4',
      { from: BOB, to: ALICE, amount: 10 },
      '?mode=choreography',
    );
    assert.equal(a.status, 202, a.text);
    const s = await settled(c, 'us-east-1', (a.json as { id: string }).id);
    assert.equal(s.status, 'completed');
    assert.equal(await balance(c, 'ap-northeast-1', BOB), 120);
    assert.equal(await balance(c, 'us-east-1', ALICE), 80);
  });

  it('sums sagas and money for the dashboard (GET /v1/sagas)', async () => {
    const sum = await eventually('every region sees the four sagas settled', async () => {
      const r = await call(c.url('eu-west-1'), 'GET', '/v1/sagas');
      const j = r.json as { sagas: Record<string, number>; money: { total: number; accounts: number } };
      return j.sagas.completed === 2 && j.sagas.compensated === 2 && j.money.accounts === 2 ? j : undefined;
    });
    assert.equal(sum.money.total, 200);
  });

  it('keeps the account steps to the cluster (401 without the secret)', async () => {
    const r = await call(c.url('us-east-1'), 'POST', '/internal/accounts/alice/apply', {
      body: { delta: 1000 },
      headers: { 'idempotency-key': 'steal' },
    });
    assert.equal(r.status, 401);
  });
});

describe('a transfer saga survives the crash of its coordinator', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ store: 'sqlite', mode: 'process' });
    await openAccount(c, 'us-east-1', CAROL, 50);
    await openAccount(c, 'ap-northeast-1', DAVE, 0);
  });
  after(async () => {
    await c?.stop();
  });

  it('resumes after kill -9 and restart, with each step applied once', async () => {
    await eventually('eu-west-1 knows both homes', async () => {
      const a = await call(c.url('eu-west-1'), 'GET', `/v1/accounts/${CAROL}`);
      const b = await call(c.url('eu-west-1'), 'GET', `/v1/accounts/${DAVE}`);
      return a.status === 200 && b.status === 200;
    });
    // The credit's home is down: the coordinator debits, then keeps retrying the credit.
    await c.kill('ap-northeast-1');
    const a = await transfer(c, 'eu-west-1', 'crash-1', { from: CAROL, to: DAVE, amount: 20 });
    assert.equal(a.status, 202, a.text);
    const id = (a.json as { id: string }).id;
    await eventually('the debit is done and the credit is being retried', async () => {
      const s = (await call(c.url('eu-west-1'), 'GET', `/v1/sagas/${id}`)).json as Saga;
      return s.steps[0]!.status === 'done' && s.steps[1]!.status !== 'pending';
    });
    await c.kill('eu-west-1');
    await c.restart('ap-northeast-1');
    await c.restart('eu-west-1');
    const s = await settled(c, 'eu-west-1', id, 30_000);
    assert.ok(['completed', 'compensated'].includes(s.status), s.status);
    const total = (await balance(c, 'us-east-1', CAROL)) + (await balance(c, 'ap-northeast-1', DAVE));
    assert.equal(total, 50, 'money is conserved');
    if (s.status === 'completed') assert.equal(await balance(c, 'ap-northeast-1', DAVE), 20);
    else assert.equal(await balance(c, 'us-east-1', CAROL), 50);
  });
});
