/** The shape of a checker: one guarantee, checked against a run's history. */
import type { History, Violation } from '../history.js';

export interface Checker {
  name: string;
  /** The guarantee, in one sentence (docs/guarantees.md says more). */
  guarantee: string;
  check(h: History): Violation[];
}

/** Canonical JSON (sorted keys), so equal states compare equal whatever the key order. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const keys = Object.keys(v as object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** Structural equality of JSON-like values (key order ignored), without building strings. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (
      !Object.hasOwn(b, k) ||
      !sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
    ) {
      return false;
    }
  }
  return true;
}

/** LWW order of register writes: HLC, then origin region id (as crdt.ts regWins). */
export function regOrder(a: { hlc: string; origin: string }, b: { hlc: string; origin: string }): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

export const MAX_VIOLATIONS_PER_CHECKER = 10;

export function splitDocId(id: string): [string, string] {
  const i = id.indexOf('\u0000');
  return [id.slice(0, i), id.slice(i + 1)];
}
