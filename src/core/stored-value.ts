/**
 * What the core agrees to store and replicate: a change whose payload has the shape its kind
 * promises and whose values are plain JSON, nested at most `maxDepth` deep and at most `maxBytes`
 * large once serialised. Anything else would be committed and then fail to read back, serialise
 * or replicate (JSON.stringify recurses and overflows the stack a few thousand levels down), so
 * it is refused before it is staged. Every walk here is iterative: a hostile value cannot
 * overflow the stack of the check meant to catch it.
 */
import type { ChangePayload } from './change.js';
import { MeridianError } from './errors.js';

export interface StoredValueLimits {
  /** Nesting of one value (a scalar is depth 0, `[1]` depth 1). */
  maxDepth: number;
  /** Serialised size of one change's payload (estimated at 3 bytes per UTF-16 unit of its strings). */
  maxBytes: number;
}

/**
 * Depth: above the most the node's request limit may be configured to (`maxJsonDepth` <= 1000, plus
 * the few levels an idempotency answer wraps a value in), far below where V8's JSON.stringify
 * overflows (about 4,000 levels on Node's default stack).
 */
export const DEFAULT_STORED_VALUE_LIMITS: StoredValueLimits = Object.freeze({
  maxDepth: 1024,
  maxBytes: 8 * 1024 * 1024,
});

/** A budget of serialised bytes shared by all values of one payload. */
interface Budget {
  bytes: number;
}

/**
 * Checks one JSON value; throws a MeridianError (`too_deep`, `too_large` for size, `bad_request`
 * for what JSON cannot represent) naming `what`. Deducts the value's size from `budget`.
 */
export function checkJsonValue(
  value: unknown,
  limits: StoredValueLimits,
  budget: Budget,
  what: string,
): void {
  // Parallel stacks of values and their depths: no object per visited node.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    // Scalars and punctuation: an upper bound of what JSON.stringify writes.
    if (v === null || typeof v === 'boolean') budget.bytes -= 5;
    else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new MeridianError('bad_request', `${what}: numbers must be finite`);
      budget.bytes -= 24;
    } else if (typeof v === 'string') budget.bytes -= stringBytes(v);
    else if (typeof v === 'object') {
      if (depth >= limits.maxDepth) {
        throw new MeridianError('too_deep', `${what} is nested deeper than ${limits.maxDepth} levels`);
      }
      if (Array.isArray(v)) {
        budget.bytes -= 2 + v.length;
        for (let i = 0; i < v.length; i++) {
          values.push(v[i]);
          depths.push(depth + 1);
        }
      } else {
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto !== Object.prototype && proto !== null) {
          throw new MeridianError('bad_request', `${what}: only plain JSON objects can be stored`);
        }
        budget.bytes -= 2;
        for (const k of Object.keys(v)) {
          budget.bytes -= stringBytes(k) + 1;
          values.push((v as Record<string, unknown>)[k]);
          depths.push(depth + 1);
        }
      }
    } else throw new MeridianError('bad_request', `${what}: a ${typeof v} is not JSON`);
    if (budget.bytes < 0) {
      throw new MeridianError('too_large', `${what} is larger than ${limits.maxBytes} bytes serialised`);
    }
  }
}

/** UTF-8 is at most 3 bytes per UTF-16 unit; escaped control characters, rare, are not counted. */
function stringBytes(s: string): number {
  return 2 + s.length * 3;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a change payload, as built locally or received from a peer: its shape (a malformed
 * delta from a peer must not reach a merge) and every value in it. Throws a MeridianError.
 */
export function checkPayload(
  p: ChangePayload,
  limits: StoredValueLimits = DEFAULT_STORED_VALUE_LIMITS,
): void {
  const budget: Budget = { bytes: limits.maxBytes };
  if (!isRecord(p)) throw new MeridianError('bad_request', 'change payload is not an object');
  switch (p.kind) {
    case 'withheld':
      if (!Array.isArray(p.allowed) || !p.allowed.every(isString)) {
        throw new MeridianError('bad_request', 'withheld change: "allowed" must list region ids');
      }
      return;
    case 'kv':
      checkKvEntries(p.entries, limits, budget);
      return;
    case 'doc': {
      if (!isString(p.collection) || !isString(p.key)) {
        throw new MeridianError('bad_request', 'document change without a collection and key');
      }
      checkDelta(p.delta, limits, budget);
      if (p.kv !== undefined) checkKvEntries(p.kv, limits, budget);
      return;
    }
    default:
      throw new MeridianError('bad_request', 'change payload of an unknown kind');
  }
}

function checkKvEntries(entries: unknown, limits: StoredValueLimits, budget: Budget): void {
  if (!Array.isArray(entries)) throw new MeridianError('bad_request', 'kv entries must be an array');
  for (const e of entries as unknown[]) {
    if (!isRecord(e) || !isString(e.ns) || !isString(e.key)) {
      throw new MeridianError('bad_request', 'kv entry without a namespace and key');
    }
    if (e.expiresAtMs !== undefined && !Number.isFinite(e.expiresAtMs)) {
      throw new MeridianError('bad_request', 'kv entry expiry must be a number');
    }
    checkJsonValue(e.value, limits, budget, `kv ${e.ns}/${e.key.slice(0, 64)}`);
  }
}

function checkCounts(r: unknown): boolean {
  if (!isRecord(r)) return false;
  for (const k of Object.keys(r)) {
    const n = r[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return false;
  }
  return true;
}

function checkDelta(d: unknown, limits: StoredValueLimits, budget: Budget): void {
  if (!isRecord(d)) throw new MeridianError('bad_request', 'document delta is not an object');
  switch (d.t) {
    case 'reg':
      if (
        typeof d.deleted !== 'boolean' ||
        !isString(d.hlc) ||
        !isString(d.origin) ||
        !isString(d.prevHlc) ||
        (d.home !== undefined && !isString(d.home))
      ) {
        throw new MeridianError('bad_request', 'malformed register delta');
      }
      checkJsonValue(d.value, limits, budget, 'value');
      return;
    case 'counter':
      if (!checkCounts(d.p) || !checkCounts(d.n))
        throw new MeridianError('bad_request', 'malformed counter delta');
      return;
    case 'set': {
      if (!isRecord(d.adds) || !Array.isArray(d.removed) || !d.removed.every(isString)) {
        throw new MeridianError('bad_request', 'malformed set delta');
      }
      for (const m of Object.keys(d.adds)) {
        const tags = d.adds[m];
        if (!Array.isArray(tags) || !tags.every(isString))
          throw new MeridianError('bad_request', 'malformed set delta');
      }
      checkJsonValue(d.adds, limits, budget, 'set members');
      checkJsonValue(d.removed, limits, budget, 'set removals');
      return;
    }
    default:
      throw new MeridianError('bad_request', 'document delta of an unknown type');
  }
}

/** Checks a document state as it will be written (a snapshot merge stages states, not changes). */
export function checkStoredDoc(
  state: unknown,
  limits: StoredValueLimits = DEFAULT_STORED_VALUE_LIMITS,
): void {
  checkDelta(state, limits, { bytes: limits.maxBytes });
}

/** Checks the values of kv records from index `from` on, each within its own size budget. */
export function checkStoredKv(
  records: readonly { ns: string; key: string; value: unknown }[],
  from: number,
  limits: StoredValueLimits = DEFAULT_STORED_VALUE_LIMITS,
): void {
  for (let i = from; i < records.length; i++) {
    const r = records[i]!;
    checkJsonValue(r.value, limits, { bytes: limits.maxBytes }, `kv ${r.ns}/${r.key.slice(0, 64)}`);
  }
}
