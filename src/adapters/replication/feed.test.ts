import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegionCore } from '../../core/region.js';
import { MemoryStore } from '../../core/store.js';
import type { CollectionSpec, RegionInfo } from '../../core/types.js';
import { systemClock, systemTimers } from '../system.js';
import { Backoff } from './backoff.js';
import { PeerFeed } from './feed.js';
import { decodeMessage, type StreamMessage } from './protocol.js';

const regions: RegionInfo[] = [
  { id: 'us-east-1', lat: 38.9, lon: -77.4 },
  { id: 'eu-west-1', lat: 53.3, lon: -6.3 },
  { id: 'ap-northeast-1', lat: 35.7, lon: 139.7 },
];
const collections: CollectionSpec[] = [
  { name: 'settings', policy: 'lww', replication: { mode: 'async' } },
  { name: 'eu-only', policy: 'lww', replication: { mode: 'async' }, residency: ['eu-west-1'] },
];

const open = (region: string) =>
  RegionCore.open({
    region,
    regions,
    collections,
    store: new MemoryStore(),
    clock: systemClock,
    timers: systemTimers,
  });

function collect() {
  const messages: StreamMessage[] = [];
  const sink = {
    write: (s: string) => {
      for (const line of s.split('\n')) if (line) messages.push(decodeMessage(line));
      return true;
    },
    drained: async () => undefined,
  };
  return { messages, sink };
}

async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sentSeqs = (messages: StreamMessage[], origin: string) =>
  messages.flatMap((m) =>
    m.t === 'changes' ? m.changes.filter((c) => c.origin === origin).map((c) => c.seq) : [],
  );

describe('PeerFeed', () => {
  it('sends catch-up then live changes, each once and in order, and heartbeats when idle', async () => {
    const us = await open('us-east-1');
    for (let i = 0; i < 3; i++) await us.put('settings', `k${i}`, i);
    const { messages, sink } = collect();
    const feed = new PeerFeed(us, 'eu-west-1', {}, sink, { heartbeatMs: 30 });
    const running = feed.run();
    await until('catch-up', () => sentSeqs(messages, 'us-east-1').length === 3);
    await Promise.all([us.put('settings', 'k3', 3), us.put('settings', 'k4', 4)]);
    await until('live changes', () => sentSeqs(messages, 'us-east-1').length === 5);
    await until('a heartbeat', () => messages.some((m) => m.t === 'hb'));
    feed.close();
    await running;
    assert.equal(messages[0]!.t, 'hello');
    assert.deepEqual(sentSeqs(messages, 'us-east-1'), [1, 2, 3, 4, 5]);
    // Only the cursor the peer opened with counts as its acknowledgement, not what was sent.
    assert.deepEqual(us.peerVersion('eu-west-1'), {});
  });

  it('relays other origins only when asked, and withholds resident data', async () => {
    const us = await open('us-east-1');
    const eu = await open('eu-west-1');
    await eu.put('eu-only', 'secret', 'iban');
    await eu.put('settings', 'shared', 1);
    const pulled = await eu.pull('us-east-1', {});
    assert.equal(pulled.kind, 'changes');
    if (pulled.kind === 'changes') await us.applyRemote('eu-west-1', pulled.changes);
    await us.put('settings', 'mine', 2);

    for (const relay of [[], ['eu-west-1']] as const) {
      const { messages, sink } = collect();
      const feed = new PeerFeed(us, 'ap-northeast-1', {}, sink, { heartbeatMs: 1000, relay });
      const running = feed.run();
      await until('own change', () => sentSeqs(messages, 'us-east-1').length === 1);
      if (relay.length > 0) await until('relayed', () => sentSeqs(messages, 'eu-west-1').length === 2);
      feed.close();
      await running;
      assert.deepEqual(sentSeqs(messages, 'eu-west-1'), relay.length > 0 ? [1, 2] : []);
      const text = JSON.stringify(messages);
      assert.ok(!text.includes('iban') && !text.includes('secret'), 'resident data never leaves');
    }
  });
});

describe('Backoff', () => {
  it('grows exponentially up to the cap, with full jitter, and resets', () => {
    const b = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0.999 });
    const ds = Array.from({ length: 6 }, () => b.next());
    assert.deepEqual(ds, [100, 200, 400, 799, 999, 999]);
    b.reset();
    assert.equal(b.next(), 100);
    const zero = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
    assert.equal(zero.next(), 0);
  });
});
