import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { encodeHlc } from '../../core/hlc.js';
import { QUARANTINE_NS, RegionCore } from '../../core/region.js';
import { PeerFeed } from '../../core/replication/feed.js';
import type { StreamMessage, StreamRequest } from '../../core/replication/protocol.js';
import { MemoryStore } from '../../core/store.js';
import type { CollectionSpec, RegionInfo } from '../../core/types.js';
import type { VersionVector } from '../../core/version.js';
import { SqliteStore } from '../sqlite-store.js';
import { systemClock, systemTimers } from '../system.js';
import { decodeMessage, encodeMessage } from './protocol.js';

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

/** The core's feed through the HTTP framing: each message encoded as the node sends it, and decoded. */
function collect() {
  const messages: StreamMessage[] = [];
  const sink = {
    write: (m: StreamMessage) => {
      for (const line of encodeMessage(m).split('\n')) if (line) messages.push(decodeMessage(line));
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

/** An HLC from the core's clock, for a change written behind the store's back. */
const encodeHlcNow = (core: RegionCore): string => encodeHlc(core.hlc.now());

const feedOptions = (heartbeatMs: number) => ({ heartbeatMs, clock: systemClock, timers: systemTimers });
const everything = (have: VersionVector): StreamRequest => ({ have, relay: 'all' });

const sentSeqs = (messages: StreamMessage[], origin: string) =>
  messages.flatMap((m) =>
    m.t === 'changes' ? m.changes.filter((c) => c.origin === origin).map((c) => c.seq) : [],
  );

describe('PeerFeed', () => {
  it('sends catch-up then live changes, each once and in order, and heartbeats when idle', async () => {
    const us = await open('us-east-1');
    for (let i = 0; i < 3; i++) await us.put('settings', `k${i}`, i);
    const { messages, sink } = collect();
    const feed = new PeerFeed(us, 'eu-west-1', everything({}), sink, feedOptions(30));
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
      const feed = new PeerFeed(us, 'ap-northeast-1', { have: {}, relay }, sink, feedOptions(1000));
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

describe('PeerFeed and what it cannot send', () => {
  it('sends a placeholder for a stored change it cannot serialise, quarantines it, and streams on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-feed-'));
    try {
      const path = join(dir, 'us.db');
      const store = SqliteStore.open({ path });
      const us = await RegionCore.open({
        region: 'us-east-1',
        regions,
        collections,
        store,
        clock: systemClock,
        timers: systemTimers,
      });
      await us.put('settings', 'before', 1);
      // A change committed by an older version that did not check values: written behind the
      // store's back, as raw JSON text (JSON.stringify itself cannot build it).
      const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
      const hlc = encodeHlcNow(us);
      const raw = new Database(path);
      raw
        .prepare('INSERT INTO log (origin, seq, hlc, payload) VALUES (?, ?, ?, ?)')
        .run(
          'us-east-1',
          2,
          hlc,
          `{"kind":"doc","collection":"settings","key":"deep","delta":{"t":"reg","value":${deep},"deleted":false,"hlc":"${hlc}","origin":"us-east-1","prevHlc":"000000000000-000000"}}`,
        );
      raw.prepare('UPDATE state SET applied = ? WHERE id = 1').run('{"us-east-1":2}');
      raw.close();
      await store.close();
      const reopened = SqliteStore.open({ path: join(dir, 'us.db') });
      const us2 = await RegionCore.open({
        region: 'us-east-1',
        regions,
        collections,
        store: reopened,
        clock: systemClock,
        timers: systemTimers,
      });
      await us2.put('settings', 'after', 3);
      const { messages, sink } = collect();
      const feed = new PeerFeed(us2, 'eu-west-1', everything({}), sink, feedOptions(30));
      const running = feed.run();
      await until('all three', () => sentSeqs(messages, 'us-east-1').length === 3);
      await until('a heartbeat after them', () => messages.at(-1)?.t === 'hb');
      assert.equal(feed.closed, false, 'the stream goes on');
      feed.close();
      await running;
      const sent = messages.flatMap((m) => (m.t === 'changes' ? m.changes : []));
      assert.deepEqual(
        sent.map((c) => [c.seq, c.payload.kind]),
        [
          [1, 'doc'],
          [2, 'withheld'],
          [3, 'doc'],
        ],
      );
      await until('the quarantine record', () => us2.stats().quarantined === 1);
      const kept = await us2.listKv(QUARANTINE_NS);
      assert.equal(kept.length, 1);
      assert.match((kept[0]!.value as { reason: string }).reason, /not sent to eu-west-1/);
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends a peer its own changes back when its cursor is behind them (its disk was wiped)', async () => {
    const us = await open('us-east-1');
    const eu = await open('eu-west-1');
    for (let i = 0; i < 3; i++) await us.put('settings', `k${i}`, i);
    const pulled = await us.pull('eu-west-1', {});
    if (pulled.kind === 'changes') await eu.applyRemote('us-east-1', pulled.changes);
    for (const [have, expected] of [
      [{ 'us-east-1': 3 }, []],
      [{}, [1, 2, 3]],
      [{ 'us-east-1': 1 }, [2, 3]],
    ] as const) {
      const { messages, sink } = collect();
      const feed = new PeerFeed(eu, 'us-east-1', everything(have), sink, feedOptions(20));
      const running = feed.run();
      await until('a heartbeat', () => messages.some((m) => m.t === 'hb'));
      feed.close();
      await running;
      assert.deepEqual(sentSeqs(messages, 'us-east-1'), expected);
    }
  });
});
