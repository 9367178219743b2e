/**
 * Checkers of the saga and idempotency workloads, one per guarantee: every saga ends completed or
 * fully compensated (the same in every region); money is conserved and each saga's effects match
 * its outcome; no idempotency key's effect is applied twice.
 */
import { IDEMPOTENCY_NS, isIdempotencyRecord } from '../../core/idempotency.js';
import { balanceOf } from '../../core/saga/accounts.js';
import type { SagaRecord } from '../../core/saga/types.js';
import type { Json, RegionId } from '../../core/types.js';
import type { SagaSimulation } from './saga-sim.js';
import { depositAccounts, INITIAL_BALANCE, transferAccounts } from './saga-sim.js';

export interface SagaViolation {
  checker: 'sagas-settle' | 'money-conserved' | 'idempotent-once';
  message: string;
  replay?: string;
}

type Sim = Pick<
  SagaSimulation,
  'options' | 'stats' | 'sagaIds' | 'deposits' | 'increments' | 'procs' | 'node'
>;

async function statusOf(sim: Sim, region: RegionId, key: string): Promise<number | undefined> {
  const r = await sim.procs.get(region)?.core?.getKv(IDEMPOTENCY_NS, key);
  return r && isIdempotencyRecord(r.value) ? r.value.status : undefined;
}

async function balanceAt(sim: Sim, home: RegionId, account: string): Promise<number | undefined> {
  const v = (await sim.procs.get(home)?.core?.get('accounts', account))?.value;
  return balanceOf(v as Json | undefined);
}

export async function checkSagaRun(sim: Sim): Promise<SagaViolation[]> {
  const out: SagaViolation[] = [];
  const regions = sim.options.regions;
  const first = sim.node(regions[0]!);
  if (!first) return [{ checker: 'sagas-settle', message: `${regions[0]} is not up at the end` }];
  const sagas = await first.engine.list();
  const byId = new Map(sagas.map((s) => [s.id, s]));
  for (const s of sagas) {
    if (s.status === 'completed') sim.stats.completed++;
    else if (s.status === 'compensated') sim.stats.compensated++;
    else if (s.status === 'stuck') sim.stats.stuck++;
    else sim.stats.running++;
    if (s.history.some((h) => h.event.startsWith('settled'))) sim.stats.settled++;
    if (s.history.some((h) => h.event.startsWith('handed to'))) sim.stats.handedOver++;
  }

  // ---- every saga ends completed or compensated, and every region agrees
  if (!sim.stats.quiesced) {
    out.push({
      checker: 'sagas-settle',
      message: 'the run did not quiesce after healing (sagas still running or regions apart)',
    });
  }
  for (const id of sim.sagaIds) {
    if (!byId.has(id))
      out.push({
        checker: 'sagas-settle',
        message: `saga ${id} acknowledged to a client is missing in ${regions[0]}`,
      });
  }
  for (const s of sagas) {
    if (s.status !== 'completed' && s.status !== 'compensated') {
      out.push({ checker: 'sagas-settle', message: `saga ${s.id} ended ${s.status}: ${historyTail(s)}` });
    }
  }
  for (const r of regions.slice(1)) {
    const n = sim.node(r);
    if (!n) continue;
    for (const s of await n.engine.list()) {
      const mine = byId.get(s.id);
      if (mine?.status !== s.status) {
        out.push({
          checker: 'sagas-settle',
          message: `saga ${s.id} is ${s.status} in ${r} but ${mine?.status} in ${regions[0]}`,
        });
      }
    }
  }

  // ---- money is conserved, and each saga's effects match its outcome
  const accounts = transferAccounts(regions);
  const home = new Map(accounts.map((a) => [a.key, a.home]));
  let total = 0;
  for (const a of accounts) {
    const b = await balanceAt(sim, a.home, a.key);
    if (b === undefined || b < 0)
      out.push({ checker: 'money-conserved', message: `account ${a.key} has balance ${b}` });
    total += b ?? 0;
  }
  const want = accounts.length * INITIAL_BALANCE;
  if (total !== want)
    out.push({ checker: 'money-conserved', message: `total money is ${total}, expected ${want}` });
  for (const s of sagas) {
    const input = s.input as { from: string; to: string };
    const fromHome = home.get(input.from);
    const toHome = home.get(input.to);
    const ok = (x: number | undefined) => x !== undefined && x >= 200 && x < 300;
    const debit = fromHome ? await statusOf(sim, fromHome, `${s.id}:debit`) : undefined;
    const refund = fromHome ? await statusOf(sim, fromHome, `${s.id}:debit:compensate`) : undefined;
    const credit = toHome ? await statusOf(sim, toHome, `${s.id}:credit`) : undefined;
    const effect = `debit ${debit ?? '-'}, refund ${refund ?? '-'}, credit ${credit ?? '-'}`;
    if (s.status === 'completed' && !(ok(debit) && ok(credit) && !ok(refund))) {
      out.push({
        checker: 'money-conserved',
        message: `saga ${s.id} completed but its effects are: ${effect}`,
      });
    }
    if (s.status === 'compensated' && (ok(credit) || ok(debit) !== ok(refund))) {
      out.push({
        checker: 'money-conserved',
        message: `saga ${s.id} compensated but its effects are: ${effect}`,
      });
    }
  }

  // ---- no key's effect applied twice: deposits (home-routed) and keyed increments
  const depHome = new Map(depositAccounts(regions).map((a) => [a.key, a.home]));
  const expected = new Map<string, number>();
  for (const d of sim.deposits) {
    const h = depHome.get(d.account)!;
    if ((await statusOf(sim, h, d.key)) === 200)
      expected.set(d.account, (expected.get(d.account) ?? 0) + d.amount);
  }
  for (const [account, h] of depHome) {
    const b = (await balanceAt(sim, h, account)) ?? 0;
    const e = expected.get(account) ?? 0;
    if (b !== e) {
      out.push({
        checker: 'idempotent-once',
        message: `deposit account ${account} holds ${b}, but its distinct applied keys add up to ${e}`,
      });
    }
  }
  const counted = new Map<string, number>();
  for (const inc of sim.increments) {
    if ((await statusOf(sim, inc.region, inc.key)) === 200)
      counted.set(inc.counter, (counted.get(inc.counter) ?? 0) + 1);
  }
  const core = sim.procs.get(regions[0]!)?.core;
  for (const counter of new Set(sim.increments.map((i) => i.counter))) {
    const v = (await core?.get('likes', counter))?.value;
    const n = typeof v === 'number' ? v : 0;
    if (n !== (counted.get(counter) ?? 0)) {
      out.push({
        checker: 'idempotent-once',
        message: `counter ${counter} is ${n}, but ${counted.get(counter) ?? 0} distinct keys were applied`,
      });
    }
  }
  return out;
}

function historyTail(s: SagaRecord): string {
  return s.history
    .slice(-4)
    .map((h) => `${h.region} ${h.event}${h.step ? ` ${h.step}` : ''}${h.error ? ` (${h.error})` : ''}`)
    .join('; ');
}
