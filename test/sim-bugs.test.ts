/**
 * Planted bugs: each deliberate defect of the product code (RegionCore's PlantedBugs, the health
 * state machine's HealthBugs, IdempotencyBugs and SagaBugs) must be caught by the checker for the
 * guarantee it breaks, on a fixed seed and fault schedule; the same run without the bug is clean, so
 * a checker that goes blind fails its test. docs/simulator.md lists them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HealthBugs } from '../src/core/health.js';
import type { PlantedBugs } from '../src/core/region.js';
import { DEFAULT_SIM, type SimOptions, simulate } from '../src/sim/index.js';
import type { SagaViolation } from '../src/sim/saga/checkers.js';
import {
  DEFAULT_SAGA_SIM,
  type SagaSimBugs,
  type SagaSimOptions,
  simulateSagas,
} from '../src/sim/saga/saga-sim.js';

/** One run each: `bugs` planted, every checker in `catches` must fire; without them the run is clean. */
const cases: { bugs: (keyof PlantedBugs)[]; catches: string[]; options: Partial<SimOptions> }[] = [
  {
    // applyRemote loses every increment it receives: the regions disagree and lose acknowledged work.
    bugs: ['dropIncrement'],
    catches: ['counters', 'convergence'],
    options: { seed: 1, faults: 'none', workload: 'counters', durationMs: 2000, opsPerSec: 200 },
  },
  {
    // A token read answers before the region has the session's own write: the session's edge sends
    // it elsewhere when a partition cuts it from the region it wrote to (5 of 8 seeds fire here).
    bugs: ['skipTokenWait'],
    catches: ['read-your-writes'],
    options: { seed: 1, faults: 'partitions', workload: 'counters', durationMs: 10_000, opsPerSec: 800 },
  },
  {
    // The same bug, a read after a read: the partition sends a session's next read of a counter to a
    // region that has not applied what it read before (rarer: 1 of 8 seeds of this run).
    bugs: ['skipTokenWait'],
    catches: ['monotonic-reads'],
    options: { seed: 1, faults: 'partitions', workload: 'counters', durationMs: 6000, opsPerSec: 500 },
  },
  {
    // A slow disk keeps received changes non-durable for tens of milliseconds: an early ack confirms
    // a sync write that only its origin holds.
    bugs: ['ackBeforeApply'],
    catches: ['sync-durability'],
    options: { seed: 1, faults: 'slow-disk', workload: 'registers', durationMs: 3000, opsPerSec: 200 },
  },
  {
    // Resident kv records (the answers stored beside eu-profiles) leave their residency in a snapshot.
    bugs: ['leakResidentKv'],
    catches: ['residency'],
    options: { seed: 25, faults: 'heavy', workload: 'mixed', durationMs: 6000, opsPerSec: 200 },
  },
  {
    // The feed sends eu-profiles' changes to regions outside its residency instead of placeholders.
    bugs: ['leakResidentChanges'],
    catches: ['residency'],
    options: { seed: 1, faults: 'none', workload: 'mixed', durationMs: 2000, opsPerSec: 300 },
  },
  {
    // Concurrent register writes: each region keeps whichever arrived last, not the greatest HLC.
    bugs: ['lastArrivalWins'],
    catches: ['lww', 'convergence'],
    options: { seed: 1, faults: 'none', workload: 'registers', durationMs: 3000, opsPerSec: 300 },
  },
  {
    // A member removed and added again from the same region stays removed: the add reused the tag
    // the remove had observed, in every region alike (so convergence cannot see it).
    bugs: ['reuseSetTags'],
    catches: ['sets'],
    options: { seed: 1, faults: 'none', workload: 'sets', durationMs: 4000, opsPerSec: 400 },
  },
  {
    // A pinned key written in a region that is not its home: two writers.
    bugs: ['ignoreHome'],
    catches: ['pinned'],
    options: { seed: 1, faults: 'none', workload: 'registers', durationMs: 2000, opsPerSec: 300 },
  },
  {
    // A deleted setting read back as null: a value nobody wrote (a session that had seen the key
    // is told something no write of it produced, so its session checker fires where it did).
    bugs: ['serveTombstones'],
    catches: ['read-validity'],
    options: { seed: 1, faults: 'none', workload: 'registers', durationMs: 4000, opsPerSec: 400 },
  },
];

describe('planted bugs are caught', () => {
  for (const c of cases) {
    it(`${c.bugs.join(' and ')} is caught by ${c.catches.join(' and ')}`, async () => {
      const o = { ...DEFAULT_SIM, ...c.options } as SimOptions;
      const bad = await simulate({ ...o, bugs: Object.fromEntries(c.bugs.map((b) => [b, true])) });
      const hit = new Set(bad.violations.map((v) => v.checker));
      for (const name of c.catches)
        assert.ok(hit.has(name), `${name} should fire; got ${[...hit].join(', ')}`);
      const clean = await simulate(o);
      assert.deepEqual(
        clean.violations.map((v) => `${v.checker}: ${v.message}`),
        [],
        'the same run without the bug is clean',
      );
    });
  }
});

// Issue 18: planted defects of the health state machine that every edge runs (core/health.ts),
// caught by the health checker against the simulated world's truth.
const healthCases: {
  bug: keyof HealthBugs;
  catches: string;
  options: Partial<SimOptions>;
}[] = [
  {
    // The old lab's constant 400 ms deadline, one timeout to eject: São Paulo <> Singapore is a
    // 330 ms round trip, so any stall or jitter on it ejects a live region.
    bug: 'staticTimeout',
    catches: 'health-false-ejection',
    options: {
      seed: 7,
      faults: 'light',
      regions: ['sa-east-1', 'ap-southeast-1', 'us-east-1'],
      durationMs: 10_000,
      opsPerSec: 100,
    },
  },
  {
    // Silence never counts: a partitioned (blackholed) region stays up at the edges cut off from it.
    bug: 'timeoutNotEvidence',
    catches: 'health-missed-ejection',
    options: { seed: 1, faults: 'heavy', durationMs: 10_000, opsPerSec: 100 },
  },
];

describe('planted health bugs are caught', () => {
  for (const c of healthCases) {
    it(`${c.bug} is caught by ${c.catches}`, async () => {
      const o = { ...DEFAULT_SIM, ...c.options, health: true } as SimOptions;
      const bad = await simulate({ ...o, healthBugs: { [c.bug]: true } });
      const hit = new Set(bad.violations.map((v) => v.checker));
      assert.ok(hit.has(c.catches), `${c.catches} should fire; got ${[...hit].join(', ')}`);
      const clean = await simulate(o);
      assert.deepEqual(
        clean.violations.map((v) => `${v.checker}: ${v.message}`),
        [],
        'the same run without the bug is clean',
      );
    });
  }
});

// The saga and idempotency workloads (src/sim/saga): defects of core/idempotency.ts and of the saga
// engine, caught by the checkers that judge the accounts and counters at the end.
const sagaCases: {
  bug: keyof SagaSimBugs;
  catches: SagaViolation['checker'];
  options: Partial<SagaSimOptions>;
}[] = [
  {
    // Duplicated deliveries and retries elsewhere find no stored answer and apply again.
    bug: 'forgetIdempotencyAnswers',
    catches: 'idempotent-once',
    options: { seed: 1, durationMs: 4000 },
  },
  {
    // A debit whose outcome is unknown is refunded without fencing its key: a late debit then lands
    // after the saga compensated, or a refund is paid for a debit that never happened.
    bug: 'settleWithoutFence',
    catches: 'money-conserved',
    options: { seed: 1 },
  },
];

describe('planted saga and idempotency bugs are caught', () => {
  for (const c of sagaCases) {
    it(`${c.bug} is caught by ${c.catches}`, async () => {
      const o = { ...DEFAULT_SAGA_SIM, ...c.options } as SagaSimOptions;
      const bad = await simulateSagas({ ...o, bugs: { [c.bug]: true } });
      const hit = new Set(bad.violations.map((v) => v.checker));
      assert.ok(hit.has(c.catches), `${c.catches} should fire; got ${[...hit].join(', ')}`);
      assert.match(bad.replay, new RegExp(`--bug ${c.bug}`));
      const clean = await simulateSagas(o);
      assert.deepEqual(
        clean.violations.map((v) => `${v.checker}: ${v.message}`),
        [],
        'the same run without the bug is clean',
      );
    });
  }
});
