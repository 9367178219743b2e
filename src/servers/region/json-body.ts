/**
 * The node's one JSON body parser: every body is checked against the node's limits (nesting depth,
 * members per object, array length, string length) before a route sees it, so nothing a route
 * stores can be too deep to serialize, replicate or read back.
 */
import { MeridianError } from '../../core/errors.js';

export interface JsonLimits {
  maxJsonDepth: number;
  maxObjectKeys: number;
  maxArrayLength: number;
  maxStringLength: number;
}

const OPEN_BRACKET = 0x5b; // [
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACKET = 0x5d; // ]
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Refuses text nested deeper than `maxDepth` before it is parsed: one pass over the characters,
 * outside strings, so neither this check nor the parser ever sees a deep value.
 */
function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) {
        throw new MeridianError(
          'too_deep',
          `the JSON body nests arrays and objects more than ${maxDepth} deep`,
        );
      }
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) depth--;
  }
}

function tooLarge(what: string, limit: number): MeridianError {
  return new MeridianError('too_large', `the JSON body has ${what} over the limit of ${limit}`);
}

/** Walks a parsed value with an explicit stack (its depth is already bounded, but no recursion either way). */
function checkSizes(value: unknown, l: JsonLimits): void {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.length > l.maxStringLength) throw tooLarge('a string', l.maxStringLength);
    } else if (Array.isArray(v)) {
      if (v.length > l.maxArrayLength) throw tooLarge('an array', l.maxArrayLength);
      for (const x of v) if (typeof x === 'object' || typeof x === 'string') stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      if (keys.length > l.maxObjectKeys) throw tooLarge('an object with more members', l.maxObjectKeys);
      for (const k of keys) {
        if (k.length > l.maxStringLength) throw tooLarge('a member name', l.maxStringLength);
        const x = (v as Record<string, unknown>)[k];
        if (typeof x === 'object' || typeof x === 'string') stack.push(x);
      }
    }
  }
}

/**
 * Parses a request body under the node's limits. An empty body is no body (`undefined`): a DELETE
 * or GET that names `Content-Type: application/json` and sends nothing is not malformed.
 *
 * JSON.parse defines every member, `__proto__` included, as an own data property: such a key is
 * kept as data and never reaches an object's prototype, unlike fastify's default parser, which
 * refuses it.
 * @example
 *   parseJsonBody('{"a":[1,2]}', limits); // { a: [1, 2] }
 */
export function parseJsonBody(text: string, limits: JsonLimits): unknown {
  if (text.trim().length === 0) return undefined;
  checkDepth(text, limits.maxJsonDepth);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MeridianError('bad_json', `malformed JSON: ${(e as Error).message}`);
  }
  checkSizes(value, limits);
  return value;
}
