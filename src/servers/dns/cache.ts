/**
 * Memoized answers. An answer depends only on the query's bytes after its id, the sender's address,
 * the transport and the health view, so a repeated query (the common case: a few resolvers asking
 * for one name) skips decoding, the GeoIP lookup and encoding; only the id is patched in. The whole
 * cache is dropped when any region's health changes, and when it reaches its size bound.
 */
import type { Outcome, QueryContext } from './answer.js';

export const ANSWER_CACHE_ENTRIES = 10_000;

type Reply = Extract<Outcome, { kind: 'reply' }>;

/**
 * @example
 * const cached = new AnswerCache((msg, ctx) => answerQuery(msg, ctx, router));
 * health.onChange(() => cached.clear());
 * const out = cached.answer(bytes, { sourceIp, transport: 'udp' });
 */
export class AnswerCache {
  private readonly entries = new Map<string, Reply>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly compute: (msg: Buffer, ctx: QueryContext) => Outcome,
    private readonly maxEntries = ANSWER_CACHE_ENTRIES,
  ) {}

  answer(msg: Buffer, ctx: QueryContext): Outcome {
    // Runts and responses are dropped by compute; they are cheap and not worth a key.
    if (msg.length < 12 || (msg[2] ?? 0) & 0x80) return this.compute(msg, ctx);
    const key = `${ctx.transport}|${ctx.sourceIp}|${msg.toString('latin1', 2)}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      const bytes = Buffer.allocUnsafe(hit.bytes.length);
      hit.bytes.copy(bytes);
      bytes.writeUInt16BE(msg.readUInt16BE(0), 0);
      return { ...hit, bytes };
    }
    this.misses++;
    const out = this.compute(msg, ctx);
    if (out.kind === 'reply') {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, out);
    }
    return out;
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
