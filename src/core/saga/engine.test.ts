import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALWAYS, VirtualTime } from '../../sim/time.js';
import { MeridianError } from '../errors.js';
import { Prng } from '../random.js';
import { RegionCore } from '../region.js';
import { MemoryStore } from '../store.js';
import type { Json } from '../types.js';
import { SAGA_NS, SagaEngine } from './engine.js';
import { StepFailure } from './retry.js';
import type { SagaDefinition, SagaStep, StepContext } from './types.js';

async function setup() {
  const vt = new VirtualTime();
  const clock = vt.clock({ ms: 0 });
  const timers = vt.timers(ALWAYS);
  const core = await RegionCore.open({
    region: 'us-east-1',
    regions: [{ id: 'us-east-1', lat: 0, lon: 0 }],
    collections: [],
    store: new MemoryStore(),
    clock,
    timers,
  });
  const engine = (defs: SagaDefinition[]) =>
    new SagaEngine({
      region: 'us-east-1',
      kv: core,
      clock,
      timers,
      random: new Prng(1),
      definitions: defs,
      retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000, stepTimeoutMs: 500 },
    });
  return { vt, core, engine };
}

/** A step that records its calls and answers from a script: ok, a retryable or a permanent error, or never. */
function scripted(
  name: string,
  script: ('ok' | 'retry' | 'refuse' | 'hang')[],
  log: string[],
  comp?: ('ok' | 'retry' | 'refuse')[],
): SagaStep {
  let n = 0;
  let c = 0;
  const act = (kind: string | undefined, ctx: StepContext, tag: string): Promise<Json> => {
    log.push(`${tag} ${ctx.idempotencyKey} #${ctx.attempt}`);
    if (kind === 'retry') return Promise.reject(new Error('connection reset'));
    if (kind === 'refuse') return Promise.reject(new StepFailure('refused', true));
    if (kind === 'hang') return new Promise(() => {});
    return Promise.resolve({ step: name });
  };
  const step: SagaStep = { name, action: (ctx) => act(script[n++] ?? 'ok', ctx, name) };
  if (comp) step.compensate = (ctx) => act(comp[c++] ?? 'ok', ctx, `undo-${name}`);
  return step;
}

describe('saga engine', () => {
  it('runs the steps in order with keys derived from the saga and step, persisting the record', async () => {
    const { vt, core, engine } = await setup();
    const log: string[] = [];
    const e = engine([{ type: 't', steps: [scripted('a', [], log), scripted('b', [], log)] }]);
    const { saga, created } = await e.start('t', { x: 1 }, { id: 's1' });
    assert.equal(created, true);
    assert.equal(saga.status, 'running');
    await vt.waitFor(async () => (await e.get('s1'))?.status === 'completed');
    assert.deepEqual(log, ['a s1:a #1', 'b s1:b #1']);
    const rec = (await core.getKv(SAGA_NS, 's1'))?.value as { steps: { status: string; result: Json }[] };
    assert.deepEqual(
      rec.steps.map((s) => [s.status, s.result]),
      [
        ['done', { step: 'a' }],
        ['done', { step: 'b' }],
      ],
    );
    const again = await e.start('t', { x: 1 }, { id: 's1' });
    assert.equal(again.created, false);
    assert.deepEqual(await e.counts(), {
      running: 0,
      completed: 1,
      compensating: 0,
      compensated: 0,
      stuck: 0,
    });
  });

  it('retries a failing step with backoff and the same key', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const e = engine([{ type: 't', steps: [scripted('a', ['retry', 'retry', 'ok'], log)] }]);
    const t0 = vt.nowMs;
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'completed');
    assert.deepEqual(log, ['a s:a #1', 'a s:a #2', 'a s:a #3']);
    const h = (await e.get('s'))!.history.map((x) => x.event);
    assert.deepEqual(h.filter((x) => x === 'retry').length, 2);
    assert.ok(vt.nowMs - t0 <= 100 + 200, 'full jitter stays under the exponential cap');
  });

  it('compensates done steps in reverse order after a refusal; the refused step is not compensated', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const e = engine([
      {
        type: 't',
        steps: [scripted('a', [], log, []), scripted('b', [], log, []), scripted('c', ['refuse'], log, [])],
      },
    ]);
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'compensated');
    assert.deepEqual(log, [
      'a s:a #1',
      'b s:b #1',
      'c s:c #1',
      'undo-b s:b:compensate #1',
      'undo-a s:a:compensate #1',
    ]);
    assert.deepEqual(
      (await e.get('s'))!.steps.map((s) => s.status),
      ['compensated', 'compensated', 'failed'],
    );
  });

  it('times out a hanging attempt, and compensates an unknown outcome without settle', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const e = engine([
      { type: 't', steps: [scripted('a', [], log, []), scripted('b', ['hang', 'hang', 'hang'], log, [])] },
    ]);
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'compensated');
    const s = (await e.get('s'))!;
    assert.equal(s.steps[1]!.attempts, 3);
    assert.match(s.steps[1]!.error ?? '', /timed out after 500 ms/);
    // b's outcome is unknown, so its own (idempotent) compensation runs before a's.
    assert.deepEqual(log.slice(-2), ['undo-b s:b:compensate #1', 'undo-a s:a:compensate #1']);
  });

  it('settles an unknown outcome: applied after all continues forward', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const b = scripted('b', ['hang', 'hang', 'hang'], log, []);
    b.settle = async () => ({ applied: true, result: 'late' });
    const e = engine([{ type: 't', steps: [scripted('a', [], log, []), b, scripted('c', [], log)] }]);
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'completed');
    assert.equal((await e.get('s'))!.steps[1]!.result, 'late');
  });

  it('retries a compensation until it succeeds', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const e = engine([
      {
        type: 't',
        steps: [
          scripted('a', [], log, ['retry', 'retry', 'retry', 'retry', 'ok']),
          scripted('b', ['refuse'], log),
        ],
      },
    ]);
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'compensated');
    assert.equal((await e.get('s'))!.steps[0]!.compensationAttempts, 5);
  });

  it('marks a saga stuck, with its history, when a compensation is refused', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const e = engine([
      { type: 't', steps: [scripted('a', [], log, ['refuse']), scripted('b', ['refuse'], log)] },
    ]);
    await e.start('t', null, { id: 's' });
    await vt.waitFor(async () => (await e.get('s'))?.status === 'stuck');
    const s = (await e.get('s'))!;
    assert.match(s.steps[0]!.error ?? '', /compensation failed/);
    assert.deepEqual(
      s.history.map((h) => h.event),
      ['started', 'attempt', 'done', 'attempt', 'failed', 'compensation attempt', 'stuck'],
    );
  });

  it('resumes after a crash of its node: the interrupted step runs again with the same key', async () => {
    const { vt, engine } = await setup();
    const log: string[] = [];
    const defs = (hang: boolean): SagaDefinition[] => [
      { type: 't', steps: [scripted('a', [], log), scripted('b', hang ? ['hang'] : [], log)] },
    ];
    const first = engine(defs(true));
    await first.start('t', null, { id: 's' });
    await vt.runFor(50);
    assert.deepEqual(
      (await first.get('s'))!.steps.map((x) => x.status),
      ['done', 'pending'],
      'the attempt in flight is not persisted on its own',
    );
    first.stop(); // the node dies mid-step
    await vt.runFor(10_000);
    assert.equal((await first.get('s'))!.status, 'running', 'a stopped engine writes nothing more');
    const second = engine(defs(false));
    assert.equal(await second.resume(), 1);
    await vt.waitFor(async () => (await second.get('s'))?.status === 'completed');
    assert.deepEqual(log, ['a s:a #1', 'b s:b #1', 'b s:b #1']);
    assert.ok((await second.get('s'))!.history.some((h) => h.event === 'resumed'));
  });

  it('refuses bad input and unknown types', async () => {
    const { engine } = await setup();
    const e = engine([
      {
        type: 't',
        steps: [scripted('a', [], [])],
        validate: (i) => {
          if (i === null) throw new MeridianError('bad_request', 'no input');
        },
      },
    ]);
    await assert.rejects(e.start('t', null, { id: 'x' }), (err: MeridianError) => err.status === 400);
    await assert.rejects(e.start('nope', 1, { id: 'y' }), (err: MeridianError) => err.status === 404);
  });
});
