/**
 * Child process for the kill -9 test: opens a store from the config in argv[2] (JSON), commits
 * one change per batch as fast as it can and prints "acked <seq>" after each commit returns.
 */

import type { MeridianConfig } from '../../src/adapters/config.js';
import { openStore } from '../../src/adapters/open-store.js';

const cfg = JSON.parse(process.argv[2]!) as Pick<MeridianConfig, 'store'>;
const store = await openStore(cfg, 'us-east-1');
let seq = (await store.load()).applied['us-east-1'] ?? 0;
for (;;) {
  seq++;
  const hlc = `${(1_700_000_000_000 + seq).toString(16).padStart(12, '0')}-000000`;
  const state = { t: 'reg' as const, value: seq, deleted: false, hlc, origin: 'us-east-1', prevHlc: hlc };
  await store.commit({
    docs: [{ collection: 'c', key: `k${seq}`, state, version: { 'us-east-1': seq } }],
    changes: [
      {
        origin: 'us-east-1',
        seq,
        hlc,
        payload: { kind: 'doc', collection: 'c', key: `k${seq}`, delta: state },
      },
    ],
    kv: [],
    applied: { 'us-east-1': seq },
  });
  process.stdout.write(`acked ${seq}\n`);
}
