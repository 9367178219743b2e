import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatWindowTable, measureDuplicateWindow } from '../src/sim/saga/duplicate-window.js';

/** The duplicate window of docs/transactions.md, measured in the simulator's virtual time. */
describe('idempotency keys across regions: the duplicate window', () => {
  it('is the replication delay with async keys, and closes at the acknowledgement with sync (all) keys', async () => {
    const rows = await measureDuplicateWindow();
    console.log(formatWindowTable(rows));
    for (const r of rows) {
      // A retry can only find the key once it has crossed the WAN, and the replication adds little to that.
      assert.ok(
        r.windowMs >= r.oneWayMs && r.windowMs <= r.oneWayMs + 25,
        `${r.mode} ${r.retryIn}: ${r.windowMs} ms`,
      );
      if (r.mode === 'async')
        assert.ok(r.afterAckMs > 0, 'async: a retry after the answer can still run twice');
      if (r.mode === 'sync-all')
        assert.equal(r.afterAckMs, 0, 'sync all: closed when the client has its answer');
    }
    const nearest = rows.find((r) => r.mode === 'sync-majority' && r.retryIn === 'eu-west-1')!;
    assert.equal(nearest.afterAckMs, 0, 'sync majority: closed at the ack for the region that acknowledged');
  });
});
