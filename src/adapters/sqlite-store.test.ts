/** The SQLite store's background WAL checkpointer: it copies the WAL into the database file off the event loop. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { eventually } from '../../test/support/cluster.js';
import type { RegState } from '../core/crdt.js';
import type { CommitBatch } from '../core/store.js';
import { SqliteStore } from './sqlite-store.js';

function batch(i: number): CommitBatch {
  const hlc = `0000018c${String(i).padStart(16, '0')}`;
  const state: RegState = {
    t: 'reg',
    value: { i, pad: 'x'.repeat(4000) },
    deleted: false,
    hlc,
    origin: 'us-east-1',
    prevHlc: '',
  };
  return {
    docs: [{ collection: 'settings', key: `k${i}`, state, version: { 'us-east-1': i } }],
    changes: [
      {
        origin: 'us-east-1',
        seq: i,
        hlc,
        payload: { kind: 'doc', collection: 'settings', key: `k${i}`, delta: state },
      },
    ],
    applied: { 'us-east-1': i },
    kv: [],
  };
}

describe('SqliteStore checkpointer', () => {
  it('checkpoints the WAL into the database file from its thread, and closes cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-ckpt-'));
    const path = join(dir, 'r.db');
    try {
      const store = SqliteStore.open({ path, checkpointAfterCommits: 10, checkpointIntervalMs: 20 });
      const sizeBefore = statSync(path).size;
      for (let i = 1; i <= 100; i++) await store.commit(batch(i));
      // The commits themselves never checkpoint (wal_autocheckpoint = 0): ~800 KiB sit in the WAL
      // until the thread copies them into the database file.
      await eventually(
        'the database file to receive the WAL pages',
        async () => statSync(path).size > 400_000,
      );
      assert.ok(sizeBefore < 100_000);
      await store.close();
      const again = SqliteStore.open({ path });
      assert.deepEqual((await again.load()).applied, { 'us-east-1': 100 });
      const doc = await again.getDoc('settings', 'k100');
      assert.deepEqual((doc?.state as RegState | undefined)?.value, { i: 100, pad: 'x'.repeat(4000) });
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('falls back to SQLite automatic checkpoint when the thread dies, and still closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-ckpt-'));
    const path = join(dir, 'r.db');
    try {
      const store = SqliteStore.open({ path, checkpointAfterCommits: 1, checkpointIntervalMs: 60_000 });
      await store.commit(batch(1));
      const inner = store as unknown as { checkpointer?: { worker: Worker; exited: Promise<void> } };
      const c = inner.checkpointer;
      assert.ok(c, 'the checkpointer started');
      await c.worker.terminate();
      await c.exited;
      assert.equal(inner.checkpointer, undefined);
      for (let i = 2; i <= 700; i++) await store.commit(batch(i));
      assert.ok(statSync(path).size > 400_000, 'the commits checkpointed again');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps SQLite automatic checkpoint when asked to (checkpointAfterCommits: 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meridian-ckpt-'));
    const path = join(dir, 'r.db');
    try {
      const store = SqliteStore.open({ path, checkpointAfterCommits: 0 });
      // 1,000 WAL pages (4 MiB) trigger the automatic checkpoint inside a commit.
      for (let i = 1; i <= 700; i++) await store.commit(batch(i));
      assert.ok(statSync(path).size > 400_000);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
