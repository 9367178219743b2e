/**
 * One replication driver (issue 11 item 1): the region node and the simulator both run
 * src/core/replication, and the driver itself behaves over any transport: here an in-memory one,
 * driven by ManualTimers and a hand-moved clock, so every timeout is a step of the test.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Clock } from '../src/core/ports.js';
import { Prng } from '../src/core/random.js';
import { RegionCore } from '../src/core/region.js';
import { loadRegionTable } from '../src/core/regions.js';
import {
  type AckBody,
  PeerFeed,
  type ReplicaCore,
  ReplicationDriver,
  type ReplicationSettings,
  type ReplicationTransport,
  type StreamMessage,
  type StreamRequest,
  type StreamSession,
} from '../src/core/replication/index.js';
import { MemoryStore } from '../src/core/store.js';
import type { CollectionSpec, RegionId, RegionInfo } from '../src/core/types.js';
import { Network, NO_LINK_FAULTS } from '../src/sim/network.js';
import { startQuietRegions } from '../src/sim/region-process.js';
import { VirtualTime } from '../src/sim/time.js';
import { ManualTimers } from './support/manual-timers.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-northeast-1';
const REGIONS: RegionInfo[] = [
  { id: US, lat: 38.9, lon: -77.4 },
  { id: EU, lat: 53.3, lon: -6.3 },
  { id: AP, lat: 35.7, lon: 139.7 },
];
const COLLECTIONS: CollectionSpec[] = [{ name: 'settings', policy: 'lww', replication: { mode: 'async' } }];
const SETTINGS: ReplicationSettings = {
  heartbeatMs: 1000,
  reconnectMinMs: 100,
  reconnectMaxMs: 1000,
  logKeep: 0,
  logMaxRetain: 1000,
  compactIntervalMs: 10_000,
};

/** Lets every queued promise continuation run (the in-memory transport delivers in microtasks). */
const flush = async () => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

/**
 * Regions wired by memory: a stream's messages are delivered in order, one microtask apart; a cut
 * link (either way) drops them silently, as a cut cable does.
 */
class MemoryNet {
  readonly drivers = new Map<RegionId, ReplicationDriver>();
  readonly cut = new Set<string>();
  opened: string[] = [];

  isCut(a: RegionId, b: RegionId): boolean {
    return this.cut.has(`${a}>${b}`);
  }

  transport(self: RegionId): ReplicationTransport {
    return {
      openStream: (
        peer: RegionId,
        request: StreamRequest,
        deliver: (m: StreamMessage) => Promise<void> | void,
      ) => {
        this.opened.push(
          `${self}<${peer} relay=${request.relay === 'all' ? 'all' : request.relay.join(',')}`,
        );
        let reject!: (e: Error) => void;
        const done = new Promise<void>((_, rej) => {
          reject = rej;
        });
        let chain = Promise.resolve();
        let ended = false;
        const server = this.drivers.get(peer);
        const served =
          server && !this.isCut(self, peer)
            ? server.serve(self, request, {
                write: (m) => {
                  if (!this.isCut(peer, self))
                    chain = chain.then(async () => {
                      if (!ended) await deliver(m);
                    });
                  return true;
                },
                drained: async () => undefined,
              })
            : undefined;
        const session: StreamSession = {
          done,
          close: (reason) => {
            ended = true;
            served?.feed.close();
            reject(new Error(reason));
          },
        };
        return session;
      },
      sendAck: async (peer: RegionId, body: AckBody) => {
        const server = this.drivers.get(peer);
        if (!server || this.isCut(self, peer) || this.isCut(peer, self)) return new Promise(() => {});
        return server.receiveAck(body);
      },
    };
  }
}

async function mesh(regions: RegionId[]) {
  const net = new MemoryNet();
  const timers = new ManualTimers();
  let nowMs = 1_700_000_000_000;
  const clock: Clock = { nowMs: () => nowMs };
  const cores = new Map<RegionId, RegionCore>();
  for (const r of regions) {
    const core = await RegionCore.open({
      region: r,
      regions: REGIONS.filter((x) => regions.includes(x.id)),
      collections: COLLECTIONS,
      store: new MemoryStore(),
      clock,
      timers,
    });
    cores.set(r, core);
    net.drivers.set(
      r,
      new ReplicationDriver({
        core,
        peers: regions.filter((p) => p !== r),
        transport: net.transport(r),
        clock,
        timers,
        random: new Prng(1),
        settings: SETTINGS,
      }),
    );
  }
  for (const d of net.drivers.values()) d.start();
  await flush();
  /** Moves the clock on and fires every timer due by then (ManualTimers fires all pending). */
  const advance = async (ms: number) => {
    nowMs += ms;
    timers.fireAll();
    await flush();
  };
  return { net, cores, advance, timers };
}

describe('the replication driver over an in-memory transport', () => {
  it('streams a write to every peer, and the peers acknowledge it', async () => {
    const { net, cores, advance } = await mesh([US, EU]);
    await cores.get(US)!.put('settings', 'a', 1);
    await flush();
    assert.equal((await cores.get(EU)!.get('settings', 'a'))?.value, 1);
    await advance(20); // acks of async changes are batched for 20 ms
    assert.deepEqual(cores.get(US)!.peerVersion(EU), { [US]: 1 }, 'eu acknowledged us-east-1 seq 1');
    assert.ok(net.drivers.get(EU)!.links.get(US)!.connected);
    for (const d of net.drivers.values()) await d.stop();
  });

  it('closes a silent stream after three heartbeats and reconnects from what it applied', async () => {
    const { net, cores, advance } = await mesh([US, EU]);
    await cores.get(US)!.put('settings', 'a', 1);
    await flush();
    net.cut.add(`${US}>${EU}`);
    await cores.get(US)!.put('settings', 'b', 2);
    await advance(100);
    assert.equal(await cores.get(EU)!.get('settings', 'b'), undefined, 'cut: nothing arrives');
    const link = net.drivers.get(EU)!.links.get(US)!;
    assert.ok(link.connected, 'silence shorter than three heartbeats is not yet a failure');
    await advance(3 * SETTINGS.heartbeatMs);
    assert.ok(!link.connected, 'three silent heartbeats end the stream');
    net.cut.clear();
    net.opened = [];
    await advance(SETTINGS.reconnectMaxMs);
    await advance(SETTINGS.reconnectMaxMs);
    assert.ok(link.connected, 'reconnected after its backoff');
    assert.ok(net.opened.length > 0);
    assert.equal((await cores.get(EU)!.get('settings', 'b'))?.value, 2, 'caught up from its cursor');
    for (const d of net.drivers.values()) await d.stop();
  });

  it('asks a third region to relay a peer whose own stream has been down for two heartbeats', async () => {
    const { net, cores, advance } = await mesh([US, EU, AP]);
    net.cut.add(`${AP}>${EU}`);
    net.cut.add(`${EU}>${AP}`);
    // The direct stream from ap-northeast-1 goes silent, fails, and stays down.
    for (let i = 0; i < 6; i++) await advance(SETTINGS.heartbeatMs);
    assert.ok(!net.drivers.get(EU)!.links.get(AP)!.connected);
    assert.deepEqual(net.drivers.get(EU)!.relayWanted(US), [AP]);
    assert.ok(
      net.opened.includes(`${EU}<${US} relay=${AP}`),
      `eu-west-1 re-opened its stream from us-east-1 asking for ${AP}: ${net.opened.join('; ')}`,
    );
    await cores.get(AP)!.put('settings', 'from-ap', 'hi');
    await flush();
    await advance(10);
    assert.equal((await cores.get(EU)!.get('settings', 'from-ap'))?.value, 'hi', 'relayed through us-east-1');
    for (const d of net.drivers.values()) await d.stop();
  });
});

describe('the feed', () => {
  it('does not spin on a snapshot that brings the peer nothing (the store has not made its cut durable yet)', async () => {
    // Found by sim seed 9205 (chaos, sets): a region that had just merged a snapshot had raised its
    // log's cut before the merge was durable; its feed read snapshot after snapshot at one instant.
    let pulls = 0;
    let listener: ((changes: unknown[]) => void) | undefined;
    const core = {
      region: US,
      version: { [US]: 5 },
      subscribe: (l: (changes: unknown[]) => void) => {
        listener = l;
        return () => {};
      },
      pull: async () => {
        if (++pulls > 100) throw new Error('the feed spins');
        return {
          kind: 'snapshot',
          snapshot: { docs: [], kv: [], applied: { [US]: 3 } },
          omittedCollections: [],
        };
      },
      wallClockMs: () => 0,
    } as unknown as ReplicaCore;
    const sent: string[] = [];
    const feed = new PeerFeed(
      core,
      EU,
      { have: { [US]: 3 }, relay: [] },
      {
        write: (m) => {
          sent.push(m.t);
          return true;
        },
        drained: async () => undefined,
      },
      { heartbeatMs: 1000, clock: { nowMs: () => 0 }, timers: new ManualTimers() },
    );
    const running = feed.run().catch((e: Error) => e.message);
    await flush();
    assert.equal(pulls, 1, 'one read, then it waits');
    assert.deepEqual(sent, ['hello'], 'no snapshot that holds nothing new');
    listener?.([]); // a commit: read again
    await flush();
    assert.equal(pulls, 2);
    feed.close();
    await running;
  });
});

describe('one driver, in the node and in the simulator', () => {
  const importsOf = (file: string) =>
    [...readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]!.replace(/^(\.\.\/)+/, ''));

  it('the region node and the simulated region both construct the ReplicationDriver of src/core/replication', () => {
    for (const file of ['src/servers/region/node.ts', 'src/sim/region-process.ts']) {
      const text = readFileSync(file, 'utf8');
      assert.ok(
        importsOf(file).some((i) => i.startsWith('core/replication/')),
        `${file} imports the driver from src/core/replication`,
      );
      assert.match(text, /new ReplicationDriver\(/, `${file} constructs it`);
    }
  });

  it('no other replication loop exists: no feed, link or ack sender outside src/core/replication, no pulls in sim', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, name.name);
        if (name.isDirectory()) {
          if (p !== join('src', 'core', 'replication')) walk(p);
        } else if (name.name.endsWith('.ts') && !name.name.endsWith('.test.ts')) {
          const text = readFileSync(p, 'utf8');
          if (/class (PeerFeed|PeerLink|AckSender)\b/.test(text))
            offenders.push(`${p}: its own driver class`);
          if (p.startsWith(join('src', 'sim')) && /\.pull\(/.test(text))
            offenders.push(`${p}: pulls a core's log`);
        }
      }
    };
    walk('src');
    assert.deepEqual(offenders, []);
  });

  it('a simulated region runs that driver over the simulated network, and it replicates', async () => {
    const time = new VirtualTime();
    const table = loadRegionTable();
    const net = new Network(time, new Prng(5), (a, b) => table.oneWayMs(a, b), NO_LINK_FAULTS);
    const procs = await startQuietRegions([US, EU], {
      time,
      net,
      rngFor: (r) => new Prng(r.length),
      regions: REGIONS.filter((x) => x.id !== AP),
      collections: COLLECTIONS,
    });
    for (const p of procs.values()) assert.ok(p.driver instanceof ReplicationDriver);
    await time.runUntil(1000);
    const written = procs.get(US)!.core!.put('settings', 'k', 'v');
    await time.runUntil(2000);
    await written;
    const read = procs.get(EU)!.core!.get('settings', 'k');
    await time.runUntil(2100);
    assert.equal((await read)?.value, 'v');
    for (const p of procs.values()) p.crash();
  });
});
