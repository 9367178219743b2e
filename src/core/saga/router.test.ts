import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALWAYS, VirtualTime } from '../../sim/time.js';
import { homeOfNewKey } from '../collection.js';
import { MeridianError } from '../errors.js';
import { IdempotencyKeys } from '../idempotency.js';
import { RegionCore } from '../region.js';
import { MemoryStore } from '../store.js';
import type { RegionId } from '../types.js';
import { type AccountOps, Accounts } from './accounts.js';
import { AccountRouter } from './router.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';

/**
 * A router in us-east-1 with real local accounts and scripted remote regions: `homes` says where
 * each account lives, `redirect(at)` which home a region names when the account is not its own,
 * and `known` what us-east-1 has replicated of the accounts' homes.
 */
async function setup(o: {
  homes: Record<string, RegionId>;
  redirect: (at: RegionId, account: string) => RegionId;
  known?: Record<string, RegionId>;
}) {
  const vt = new VirtualTime();
  const clock = vt.clock({ ms: 0 });
  const core = await RegionCore.open({
    region: US,
    regions: [US, EU, AP].map((id) => ({ id, lat: 0, lon: 0 })),
    collections: [{ name: 'accounts', policy: 'pinned', replication: { mode: 'async' } }],
    store: new MemoryStore(),
    clock,
    timers: vt.timers(ALWAYS),
  });
  const local = new Accounts(core, new IdempotencyKeys({ region: US, kv: core, clock }));
  const calls: string[] = [];
  const at =
    (region: RegionId, op: string) =>
    async (account: string): Promise<never | { key: string; at: RegionId }> => {
      calls.push(`${op} ${account} in ${region}`);
      if (o.homes[account] !== region) {
        throw new MeridianError('misdirected', `not in ${region}`, {
          replayRegion: o.redirect(region, account),
        });
      }
      if (account === 'broke') throw new MeridianError('insufficient_funds', 'no');
      return { key: account, at: region };
    };
  const remote = (region: RegionId): AccountOps => ({
    apply: at(region, 'apply'),
    fence: async (account) => {
      await at(region, 'fence')(account);
      return { state: 'fenced' };
    },
  });
  const router = new AccountRouter({
    region: US,
    local,
    remote,
    ...(o.known ? { homeOf: async (a: string) => o.known?.[a] ?? (await core.homeOf('accounts', a)) } : {}),
  });
  return { router, local, calls };
}

describe('account router', () => {
  it('applies to an account homed here in-process', async () => {
    const { router, local, calls } = await setup({ homes: {}, redirect: () => US });
    // A key that every region's rule homes here, so this region may open it.
    const spec = { name: 'accounts', policy: 'pinned', replication: { mode: 'async' } } as const;
    let alice = 'alice';
    for (let i = 0; homeOfNewKey(spec, [US, EU, AP], alice) !== US; i++) alice = `alice-${i}`;
    await local.open(alice, 50);
    assert.deepEqual(await router.apply(alice, -20, 'k1'), { key: alice, balance: 30 });
    assert.deepEqual(calls, []);
  });

  it('goes to the home it knows, follows a redirect, and then goes to the home directly', async () => {
    const { router, calls } = await setup({ homes: { bob: AP }, redirect: () => AP, known: { bob: EU } });
    assert.deepEqual(await router.apply('bob', 5, 'k1'), { key: 'bob', at: AP });
    assert.deepEqual(await router.fence('bob', 'k1'), { state: 'fenced' });
    assert.deepEqual(calls, [
      'apply bob in eu-west-1',
      'apply bob in ap-northeast-1',
      'fence bob in ap-northeast-1',
    ]);
  });

  it('a refusal from the home is thrown as is, and the home is remembered', async () => {
    const { router, calls } = await setup({ homes: { broke: AP }, redirect: () => AP, known: { broke: EU } });
    await assert.rejects(
      router.apply('broke', -5, 'k1'),
      (e: MeridianError) => e.code === 'insufficient_funds',
    );
    await assert.rejects(
      router.apply('broke', -5, 'k2'),
      (e: MeridianError) => e.code === 'insufficient_funds',
    );
    assert.deepEqual(calls, [
      'apply broke in eu-west-1',
      'apply broke in ap-northeast-1',
      'apply broke in ap-northeast-1',
    ]);
  });

  it('gives up as unavailable after three regions that each name another', async () => {
    const { router, calls } = await setup({
      homes: {},
      redirect: (at) => (at === EU ? AP : EU),
      known: { carol: EU },
    });
    await assert.rejects(router.apply('carol', 1, 'k'), (e: MeridianError) => e.code === 'unavailable');
    assert.equal(calls.length, 3);
  });

  it('a region that names itself as the home is not asked again', async () => {
    const { router, calls } = await setup({ homes: {}, redirect: (at) => at, known: { dave: EU } });
    await assert.rejects(router.apply('dave', 1, 'k'), (e: MeridianError) => e.code === 'misdirected');
    assert.deepEqual(calls, ['apply dave in eu-west-1']);
  });
});
