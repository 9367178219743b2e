/**
 * Idempotency keys (draft-ietf-httpapi-idempotency-key-header, with Stripe's semantics): the first
 * request with a key claims it, its answer is stored in the same transaction as its effect and
 * replicated, and any repeat replays that answer instead of running again.
 */
import { createHash } from 'node:crypto';
import type { KvEntry } from './change.js';
import { MeridianError } from './errors.js';
import type { Clock } from './ports.js';
import type { KvRead } from './region.js';
import type { KvRecord } from './store.js';
import type { Json, RegionId } from './types.js';

/** The kv namespace of idempotency records. */
export const IDEMPOTENCY_NS = 'idem';
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;
/** Stripe keeps keys 24 hours; so do we unless configured (cfg.node.idempotencyTtlMs). */
export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** A fenced record matches every request: whatever arrives with its key later replays the fence. */
export const ANY_FINGERPRINT = '*';

/** What a stored answer holds; `fp` binds it to the request that produced it. */
export interface IdempotencyRecord {
  fp: string;
  status: number;
  body: Json;
  /** The region whose commit produced the answer. */
  region: RegionId;
  atMs: number;
}

/** The parts of a request that a key is bound to. */
export interface RequestIdentity {
  method: string;
  path: string;
  /** The raw body text ('' when none); JSON bodies are canonicalised so key order does not matter. */
  body: string;
  /** Who is calling (a hash of its credentials, or 'anonymous'). */
  caller: string;
}

/**
 * Returns the key if it is 1 to 255 printable ASCII characters (an sf-string of RFC 8941, as the
 * draft requires), else throws 400.
 */
export function validateIdempotencyKey(raw: string | undefined): string {
  if (raw === undefined || raw.length === 0) {
    throw new MeridianError('bad_request', 'Idempotency-Key must be 1 to 255 printable characters', {
      header: 'Idempotency-Key',
    });
  }
  // The draft sends the key as a structured-field string: "key"; accept the bare form too.
  const key = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_CHARS || !/^[\x20-\x7e]+$/.test(key)) {
    throw new MeridianError('bad_request', 'Idempotency-Key must be 1 to 255 printable characters', {
      header: 'Idempotency-Key',
    });
  }
  return key;
}

/** A stable digest of method, path, body and caller. */
export function requestFingerprint(r: RequestIdentity): string {
  const h = createHash('sha256');
  h.update(r.method.toUpperCase());
  h.update('\u0000');
  h.update(r.path);
  h.update('\u0000');
  h.update(canonicalBody(r.body));
  h.update('\u0000');
  h.update(r.caller);
  return h.digest('base64url');
}

function canonicalBody(body: string): string {
  if (body.length === 0) return '';
  try {
    return canonicalJson(JSON.parse(body) as Json);
  } catch {
    return body;
  }
}

/** JSON with object keys sorted, so two encodings of the same value fingerprint alike. */
export function canonicalJson(v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k]!)}`).join(',')}}`;
}

export function isIdempotencyRecord(v: Json | undefined): v is IdempotencyRecord & { [k: string]: Json } {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    typeof v.fp === 'string' &&
    typeof v.status === 'number'
  );
}

/** The kv access idempotency needs; RegionCore provides it. */
export interface IdempotencyKv {
  getKv(ns: string, key: string): Promise<KvRecord | undefined>;
  writeKv(entries: KvEntry[] | ((read: KvRead) => Promise<KvEntry[]>)): Promise<unknown>;
}

/** What fencing a key found: the answer it already had, or a fence that now refuses it. */
export type FenceResult = { state: 'applied'; status: number; body: Json } | { state: 'fenced' };

export type IdempotencyDecision =
  | { kind: 'replay'; status: number; body: Json; region: RegionId }
  | { kind: 'run'; claim: IdempotencyClaim };

export interface IdempotencyOptions {
  region: RegionId;
  kv: IdempotencyKv;
  clock: Clock;
  ttlMs?: number;
  bugs?: IdempotencyBugs;
}

/** Deliberate defects, switched on only by the simulator's tests that prove a checker catches them. */
export interface IdempotencyBugs {
  /** A repeat of a finished request does not find its stored answer and runs again (double apply). */
  forgetIdempotencyAnswers?: boolean;
}

/** Raised inside a write's transaction when a record for the key arrived meanwhile (by replication). */
export class IdempotencyRaced extends Error {
  constructor(readonly record: IdempotencyRecord) {
    super('an answer for this Idempotency-Key was committed concurrently');
    this.name = 'IdempotencyRaced';
  }
}

/**
 * The idempotency keys of one region. A claim is held in memory while its request runs (one region
 * node serialises a region's writes, so this is atomic within the region); the answer becomes
 * durable only with the effect, so a crash mid-request leaves neither and a retry simply runs.
 *
 * @example
 * const keys = new IdempotencyKeys({ region: 'us-east-1', kv: core, clock });
 * const d = await keys.begin(key, requestFingerprint({ method, path, body, caller }));
 * if (d.kind === 'replay') return reply(d.status, d.body, { 'Idempotent-Replayed': 'true' });
 * try {
 *   const view = await core.put('settings', 'k', value, { kvAfter: d.claim.kvAfter(200, (v) => format(v)) });
 * } finally { d.claim.release(); }
 */
export class IdempotencyKeys {
  readonly region: RegionId;
  readonly ttlMs: number;
  private readonly inFlight = new Map<string, string>();
  private readonly kv: IdempotencyKv;
  private readonly clock: Clock;
  private readonly forgetAnswers: boolean;
  private counts = { claims: 0, replays: 0, inProgress: 0, mismatches: 0, raced: 0 };

  constructor(options: IdempotencyOptions) {
    this.region = options.region;
    this.kv = options.kv;
    this.clock = options.clock;
    this.ttlMs = options.ttlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS;
    this.forgetAnswers = options.bugs?.forgetIdempotencyAnswers === true;
  }

  /**
   * Claims `key` for a request with fingerprint `fp`, or says to replay. Throws 409 while another
   * request holds the key here, 422 when the key was used for a different request.
   */
  async begin(key: string, fp: string): Promise<IdempotencyDecision> {
    // Synchronous check-and-set before any await: two requests in this process cannot both pass.
    const holder = this.inFlight.get(key);
    if (holder !== undefined) {
      if (holder === fp) {
        this.counts.inProgress++;
        throw new MeridianError(
          'idempotency_in_progress',
          'a request with this Idempotency-Key is in progress',
        );
      }
      throw this.mismatch();
    }
    this.inFlight.set(key, fp);
    let rec: IdempotencyRecord | undefined;
    try {
      rec = this.live(await this.kv.getKv(IDEMPOTENCY_NS, key));
    } catch (e) {
      this.inFlight.delete(key);
      throw e;
    }
    if (rec) {
      this.inFlight.delete(key);
      return this.replayOf(rec, fp);
    }
    this.counts.claims++;
    return { kind: 'run', claim: new IdempotencyClaim(this, key, fp) };
  }

  /** The answer to give for a stored record: its replay, or 422 when it belongs to another request. */
  replayOf(rec: IdempotencyRecord, fp: string): IdempotencyDecision {
    if (rec.fp !== fp && rec.fp !== ANY_FINGERPRINT) throw this.mismatch();
    this.counts.replays++;
    return { kind: 'replay', status: rec.status, body: rec.body, region: rec.region };
  }

  /** The stored record of `key`, if it is live (not expired). */
  async lookup(key: string): Promise<IdempotencyRecord | undefined> {
    return this.live(await this.kv.getKv(IDEMPOTENCY_NS, key));
  }

  /** The entry that stores `status` and `body` as the answer for `key`. */
  entry(key: string, fp: string, status: number, body: Json): KvEntry {
    const now = this.clock.nowMs();
    const rec: IdempotencyRecord = { fp, status, body, region: this.region, atMs: now };
    return { ns: IDEMPOTENCY_NS, key, value: rec as unknown as Json, expiresAtMs: now + this.ttlMs };
  }

  /**
   * Makes sure a request with `key` can no longer take effect here: if it already did, returns its
   * answer; otherwise stores a fence (409 for every later request with the key). A saga uses this
   * before compensating a step whose outcome is unknown. Throws 409 while the key is in flight.
   */
  async fence(key: string): Promise<FenceResult> {
    if (this.inFlight.has(key)) {
      throw new MeridianError(
        'idempotency_in_progress',
        'a request with this Idempotency-Key is in progress',
      );
    }
    this.inFlight.set(key, ANY_FINGERPRINT);
    try {
      let found: IdempotencyRecord | undefined;
      await this.kv.writeKv(async (read) => {
        found = this.live(await read(IDEMPOTENCY_NS, key));
        if (found) return [];
        const body: Json = {
          error: { code: 'idempotency_fenced', message: 'this Idempotency-Key was cancelled before it ran' },
        };
        return [this.entry(key, ANY_FINGERPRINT, 409, body)];
      });
      return found && found.fp !== ANY_FINGERPRINT
        ? { state: 'applied', status: found.status, body: found.body }
        : { state: 'fenced' };
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Whether `key` is claimed by a running request in this region. */
  isInFlight(key: string): boolean {
    return this.inFlight.has(key);
  }

  /** @internal */
  release(key: string, fp: string): void {
    if (this.inFlight.get(key) === fp) this.inFlight.delete(key);
  }

  /** @internal */
  noteRaced(): void {
    this.counts.raced++;
  }

  stats(): {
    inFlight: number;
    claims: number;
    replays: number;
    inProgress: number;
    mismatches: number;
    raced: number;
  } {
    return { inFlight: this.inFlight.size, ...this.counts };
  }

  live(r: KvRecord | undefined): IdempotencyRecord | undefined {
    if (!r || !isIdempotencyRecord(r.value) || this.forgetAnswers) return undefined;
    if (r.expiresAtMs !== undefined && r.expiresAtMs <= this.clock.nowMs()) return undefined;
    return r.value;
  }

  private mismatch(): MeridianError {
    this.counts.mismatches++;
    return new MeridianError(
      'idempotency_mismatch',
      'this Idempotency-Key was already used for a different request (method, path, body or caller)',
    );
  }
}

/** A held key: turns the request's answer into an entry committed with its effect, then is released. */
export class IdempotencyClaim {
  constructor(
    private readonly keys: IdempotencyKeys,
    readonly key: string,
    readonly fp: string,
  ) {}

  /** The stored-answer entry, for a write that needs no re-check (saga start, tests). */
  entry(status: number, body: Json): KvEntry {
    return this.keys.entry(this.key, this.fp, status, body);
  }

  /**
   * A `kvAfter` write option: inside the write's transaction, re-checks that no answer for the key
   * arrived by replication since `begin` (else aborts with IdempotencyRaced so the caller replays),
   * and stores `answer(view)` as the answer.
   */
  kvAfter<V>(status: number, answer: (view: V) => Json): (view: V, read: KvRead) => Promise<KvEntry[]> {
    return async (view, read) => {
      await this.guard(read);
      return [this.entry(status, answer(view))];
    };
  }

  /** Throws IdempotencyRaced if a live answer for the key is already visible to the transaction. */
  async guard(read: KvRead): Promise<void> {
    const rec = this.keys.live(await read(IDEMPOTENCY_NS, this.key));
    if (rec) {
      this.keys.noteRaced();
      throw new IdempotencyRaced(rec);
    }
  }

  release(): void {
    this.keys.release(this.key, this.fp);
  }
}

/** A stored answer given again, in place of running the request. */
export interface ReplayedAnswer {
  status: number;
  body: Json;
  replayed: true;
}

/**
 * Runs one request under an idempotency key, the one path every caller takes (the node's document
 * API and account routes, saga starts, and the simulator): replays a stored answer, or runs `exec`
 * with the claim and releases the key afterwards. An answer that replication brought in while
 * `exec` ran (IdempotencyRaced inside its transaction) is replayed too. `exec` returns whatever
 * answer its caller sends (the node's carries headers); a replay is always a stored status and body.
 *
 * @example
 * const a = await withIdempotency(keys, key, fp, (claim) =>
 *   core.put('settings', 'k', value, { kvAfter: claim.kvAfter(200, (v) => format(v)) }).then(...));
 * if (a.replayed) reply.header('Idempotent-Replayed', 'true');
 */
export async function withIdempotency<T extends { status: number }>(
  keys: IdempotencyKeys,
  key: string,
  fp: string,
  exec: (claim: IdempotencyClaim) => Promise<T>,
): Promise<(T & { replayed: false }) | ReplayedAnswer> {
  const d = await keys.begin(key, fp);
  if (d.kind === 'replay') return replayed(d);
  try {
    return { ...(await exec(d.claim)), replayed: false };
  } catch (e) {
    if (e instanceof IdempotencyRaced) {
      const r = keys.replayOf(e.record, fp);
      if (r.kind === 'replay') return replayed(r);
    }
    throw e;
  } finally {
    d.claim.release();
  }
}

function replayed(d: { status: number; body: Json }): ReplayedAnswer {
  return { status: d.status, body: d.body, replayed: true };
}
