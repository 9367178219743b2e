import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Outcome, QueryContext } from './answer.js';
import { AnswerCache } from './cache.js';

function counting() {
  const calls: string[] = [];
  const compute = (msg: Buffer, ctx: QueryContext): Outcome => {
    calls.push(ctx.sourceIp);
    const bytes = Buffer.from(msg);
    bytes[2] = (bytes[2] ?? 0) | 0x80;
    return {
      kind: 'reply',
      bytes,
      rcode: 'NOERROR',
      truncated: false,
      regions: [],
      locatedBy: 'none',
      failOpen: false,
    };
  };
  return { calls, compute };
}

const q = (id: number, tail = [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) => Buffer.from([id >> 8, id & 0xff, ...tail]);
const ctx = (sourceIp: string, transport: 'udp' | 'tcp' = 'udp'): QueryContext => ({ sourceIp, transport });

describe('AnswerCache', () => {
  it('answers a repeated query from the cache with the new id', () => {
    const { calls, compute } = counting();
    const c = new AnswerCache(compute);
    c.answer(q(1), ctx('10.0.0.1'));
    const out = c.answer(q(0xbeef), ctx('10.0.0.1'));
    assert.equal(calls.length, 1);
    assert.equal(out.kind === 'reply' && out.bytes.readUInt16BE(0), 0xbeef);
    assert.equal(c.hits, 1);
  });

  it('keys on the source address, the transport and every byte after the id', () => {
    const { calls, compute } = counting();
    const c = new AnswerCache(compute);
    c.answer(q(1), ctx('10.0.0.1'));
    c.answer(q(1), ctx('10.0.0.2'));
    c.answer(q(1), ctx('10.0.0.1', 'tcp'));
    c.answer(q(1, [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]), ctx('10.0.0.1'));
    assert.equal(calls.length, 4);
  });

  it('forgets everything on clear and when full', () => {
    const { calls, compute } = counting();
    const c = new AnswerCache(compute, 2);
    c.answer(q(1), ctx('a'));
    c.clear();
    c.answer(q(1), ctx('a'));
    assert.equal(calls.length, 2);
    c.answer(q(1), ctx('b'));
    c.answer(q(1), ctx('c'));
    assert.ok(c.size <= 2);
  });

  it('does not cache runts or responses', () => {
    const { calls, compute } = counting();
    const c = new AnswerCache(compute);
    c.answer(Buffer.alloc(5), ctx('a'));
    c.answer(Buffer.alloc(5), ctx('a'));
    assert.equal(calls.length, 2);
    assert.equal(c.size, 0);
  });
});
