/**
 * Workloads: client sessions spread over the regions, each choosing its next operation (reads,
 * writes, deletes, increments, set adds and removes, pinned and sync writes, resident writes).
 * Every session keeps the edge's cookies, as a browser does; half of them also carry the version
 * token between operations. Users send only what the lab's traffic sends: no home region. Every
 * written value is unique, so a checker can tell exactly which write a read returned.
 */
import { homeOfNewKey } from '../core/collection.js';
import type { CollectionSpec, RegionId, SyncAcks } from '../core/types.js';
import type { OpKind } from './history.js';
import type { Prng } from './random.js';

export const SIM_COLLECTIONS = {
  lww: 'settings',
  counter: 'likes',
  set: 'tags',
  pinned: 'profiles',
  sync: 'accounts',
  resident: 'eu-profiles',
} as const;

/** The region a resident collection lives in: the first EU region of the run, else the first region. */
export function residentRegion(regions: readonly RegionId[]): RegionId {
  return regions.find((r) => r.startsWith('eu-')) ?? regions[0]!;
}

/** How many acknowledgements the sync collection asks for: majority, all or one, by seed. */
export function syncAcksFor(seed: number, regions: number): SyncAcks {
  if (regions < 2) return 'majority';
  const k = seed % 3;
  return k === 1 ? 'majority' : k === 2 ? 'all' : 1;
}

/** The collections of every simulated run: one per policy, a sync one and a resident one. */
export function simCollections(
  regions: readonly RegionId[],
  syncTimeoutMs: number,
  syncAcks: SyncAcks = 'majority',
): CollectionSpec[] {
  const c = SIM_COLLECTIONS;
  return [
    { name: c.lww, policy: 'lww', replication: { mode: 'async' } },
    { name: c.counter, policy: 'counter', replication: { mode: 'async' } },
    { name: c.set, policy: 'set', replication: { mode: 'async' } },
    { name: c.pinned, policy: 'pinned', replication: { mode: 'async' } },
    {
      name: c.sync,
      policy: 'pinned',
      replication: { mode: 'sync', acks: syncAcks, timeoutMs: syncTimeoutMs },
    },
    {
      name: c.resident,
      policy: 'pinned',
      replication: { mode: 'async' },
      residency: [residentRegion(regions)],
    },
  ];
}

type Choice =
  | 'get'
  | 'lww-put'
  | 'lww-delete'
  | 'increment'
  | 'set-add'
  | 'set-remove'
  | 'set-clear'
  | 'pinned-put'
  | 'sync-put'
  | 'resident-put';

export interface WorkloadSpec {
  name: string;
  describe: string;
  weights: Partial<Record<Choice, number>>;
}

export const WORKLOADS: Record<string, WorkloadSpec> = {
  mixed: {
    name: 'mixed',
    describe:
      'every policy: reads, lww writes and deletes, increments, set ops, pinned, sync and resident writes',
    weights: {
      get: 25,
      'lww-put': 20,
      'lww-delete': 2,
      increment: 18,
      'set-add': 10,
      'set-remove': 6,
      'set-clear': 1,
      'pinned-put': 8,
      'sync-put': 6,
      'resident-put': 4,
    },
  },
  counters: {
    name: 'counters',
    describe: 'increments and reads of counters',
    weights: { increment: 70, get: 30 },
  },
  registers: {
    name: 'registers',
    describe: 'lww, pinned and sync writes and reads',
    weights: { 'lww-put': 35, 'lww-delete': 3, 'pinned-put': 15, 'sync-put': 12, get: 35 },
  },
  sets: {
    name: 'sets',
    describe: 'set adds, removes and clears, and reads',
    weights: { 'set-add': 40, 'set-remove': 25, 'set-clear': 3, get: 32 },
  },
};

export function workloadSpec(name: string): WorkloadSpec {
  const w = WORKLOADS[name];
  if (!w) throw new Error(`unknown workload '${name}'; known: ${Object.keys(WORKLOADS).join(', ')}`);
  return w;
}

/** Key pools per collection: sized so that keys see conflicts but tombstones stay small. */
const KEYS: Record<string, { prefix: string; count: number }> = {
  settings: { prefix: 's', count: 200 },
  likes: { prefix: 'c', count: 60 },
  tags: { prefix: 't', count: 400 },
  profiles: { prefix: 'p', count: 100 },
  accounts: { prefix: 'a', count: 40 },
  'eu-profiles': { prefix: 'e', count: 30 },
};
const MEMBERS = ['red', 'green', 'blue', 'amber', 'teal', 'plum'];
/** Every key name of each pool, built once (a key is drawn for every operation). */
const KEY_NAMES = new Map(
  Object.entries(KEYS).map(([c, k]) => [c, Array.from({ length: k.count }, (_, i) => `${k.prefix}${i}`)]),
);
const COLLECTION_NAMES = Object.values(SIM_COLLECTIONS);

export interface Session {
  id: number;
  home: RegionId;
  token: boolean;
  /** Keys this session returns to, per collection (so it reads what it wrote). */
  favorites: Map<string, string[]>;
  rng: Prng;
}

export interface OpPlan {
  kind: OpKind;
  collection: string;
  key: string;
  /** The edge the user sends it to (the edge of its region, or of the one it roams to). */
  region: RegionId;
  by?: number;
  members?: string[];
  /** A pinned key's home by the rule: what the `pinned` checker expects (not sent). */
  home?: RegionId;
}

/**
 * Chooses operations for sessions.
 *
 * @example
 * const w = new Workload(workloadSpec('mixed'), regions, collections, rng.fork('workload'));
 * const plan = w.next(w.sessions[0]!);
 */
export class Workload {
  readonly sessions: Session[] = [];
  private readonly choices: Choice[] = [];
  private readonly cumulative: number[] = [];
  private readonly total: number;
  private readonly specs: Map<string, CollectionSpec>;
  /** Per home region, the other regions (where roaming sessions go). */
  private readonly others = new Map<RegionId, RegionId[]>();

  constructor(
    readonly spec: WorkloadSpec,
    private readonly regions: readonly RegionId[],
    collections: readonly CollectionSpec[],
    rng: Prng,
    sessionsPerRegion = 8,
  ) {
    let sum = 0;
    for (const [c, w] of Object.entries(spec.weights) as [Choice, number][]) {
      if (w <= 0) continue;
      sum += w;
      this.choices.push(c);
      this.cumulative.push(sum);
    }
    this.total = sum;
    this.specs = new Map(collections.map((c) => [c.name, c]));
    for (const r of regions)
      this.others.set(
        r,
        regions.filter((x) => x !== r),
      );
    let id = 0;
    for (const home of regions) {
      for (let i = 0; i < sessionsPerRegion; i++) {
        const srng = rng.fork(`session-${id}`);
        const favorites = new Map<string, string[]>();
        for (const [coll, k] of Object.entries(KEYS)) {
          favorites.set(
            coll,
            Array.from({ length: 4 }, () => `${k.prefix}${srng.int(0, k.count - 1)}`),
          );
        }
        this.sessions.push({ id, home, token: i % 2 === 0, favorites, rng: srng });
        id++;
      }
    }
  }

  private key(s: Session, collection: string): string {
    if (s.rng.chance(0.5)) return s.rng.pick(s.favorites.get(collection)!);
    const names = KEY_NAMES.get(collection)!;
    return names[s.rng.int(0, names.length - 1)]!;
  }

  /** The edge a session sends to: mostly its own region's, sometimes another's (a roaming user). */
  private target(s: Session): RegionId {
    if (this.regions.length === 1 || !s.rng.chance(0.25)) return s.home;
    return s.rng.pick(this.others.get(s.home)!);
  }

  /** Where a pinned key lives: the rule every region applies (for the checkers; users never send it). */
  home(collection: string, key: string): RegionId {
    return homeOfNewKey(this.specs.get(collection)!, this.regions, key);
  }

  next(s: Session): OpPlan {
    const x = s.rng.next() * this.total;
    let i = 0;
    while (this.cumulative[i]! <= x) i++;
    const choice = this.choices[i]!;
    const c = SIM_COLLECTIONS;
    switch (choice) {
      case 'get': {
        const collection = s.rng.pick(COLLECTION_NAMES);
        return { kind: 'get', collection, key: this.key(s, collection), region: this.target(s) };
      }
      case 'lww-put':
        return { kind: 'put', collection: c.lww, key: this.key(s, c.lww), region: this.target(s) };
      case 'lww-delete':
        return { kind: 'delete', collection: c.lww, key: this.key(s, c.lww), region: this.target(s) };
      case 'increment':
        return {
          kind: 'increment',
          collection: c.counter,
          key: this.key(s, c.counter),
          region: this.target(s),
          by: s.rng.int(1, 5),
        };
      case 'set-add':
        return {
          kind: 'add',
          collection: c.set,
          key: this.key(s, c.set),
          region: this.target(s),
          members: [s.rng.pick(MEMBERS)],
        };
      case 'set-remove':
        return {
          kind: 'remove',
          collection: c.set,
          key: this.key(s, c.set),
          region: this.target(s),
          members: [s.rng.pick(MEMBERS)],
        };
      case 'set-clear':
        return { kind: 'clear', collection: c.set, key: this.key(s, c.set), region: this.target(s) };
      case 'pinned-put':
      case 'sync-put':
      case 'resident-put': {
        const collection = choice === 'pinned-put' ? c.pinned : choice === 'sync-put' ? c.sync : c.resident;
        const key = this.key(s, collection);
        // Users do not know the home: their edge finds it (421 names it, the edge replays there).
        return { kind: 'put', collection, key, region: this.target(s), home: this.home(collection, key) };
      }
    }
  }
}
