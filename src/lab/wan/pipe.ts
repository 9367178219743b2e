/**
 * One direction of one proxied TCP connection: bytes read from `src` are written to `dst` at
 * (arrival + one-way delay), in order, so the link delays bytes without capping throughput.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** The network conditions of one direction of a path, read when each chunk arrives. */
export interface PathConditions {
  /** One-way delay in milliseconds. */
  delayMs: number;
  /** Each chunk's delay varies uniformly within ±jitterMs (never below 0, never reordering bytes). */
  jitterMs: number;
  /**
   * Probability that a TCP segment (1448 bytes) is lost. TCP delivers every byte anyway, so a
   * loss shows up as a retransmission stall: the chunk (and everything behind it) waits an RTO.
   */
  lossRate: number;
  /** The retransmission timeout a loss costs, in milliseconds (doubles on a repeated loss). */
  rtoMs: number;
}

export interface PipeOptions {
  src: Socket;
  dst: Socket;
  conditions: () => PathConditions;
  /** Uniform in [0, 1): jitter and loss draws (seeded in tests). */
  random: () => number;
  /** No byte is delivered before this performance.now() time plus its delay (TCP handshake). */
  notBeforeMs: number;
  /** Pause reading from `src` while this many bytes are in flight or unwritten (default 8 MiB). */
  highWaterBytes?: number;
  onDeliver?: (bytes: number) => void;
}

type Item =
  | { atMs: number; kind: 'data'; chunk: Buffer }
  | { atMs: number; kind: 'end' }
  | { atMs: number; kind: 'reset' };

const SEGMENT_BYTES = 1448;
/** A timer may fire up to this early (libuv rounds to whole ms); such items are released anyway. */
const EARLY_TOLERANCE_MS = 0.5;

export class DelayPipe {
  private readonly q: Item[] = [];
  private head = 0;
  private lastReleaseMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private inFlightBytes = 0;
  private readonly highWaterBytes: number;
  private done = false;

  constructor(private readonly o: PipeOptions) {
    this.highWaterBytes = o.highWaterBytes ?? 8 * 1024 * 1024;
    o.src.on('data', (chunk: Buffer) =>
      this.push({ atMs: this.releaseTime(chunk.length), kind: 'data', chunk }),
    );
    o.src.on('end', () => this.push({ atMs: this.releaseTime(0), kind: 'end' }));
    o.src.on('close', () => {
      // A close without a FIN (reset, error) reaches the other side as a reset, after the delay.
      if (!o.src.readableEnded) this.push({ atMs: this.releaseTime(0), kind: 'reset' });
    });
    o.dst.on('drain', () => this.updateFlow());
  }

  /** Bytes accepted from `src` and not yet handed to `dst`. */
  get queuedBytes(): number {
    return this.inFlightBytes;
  }

  /** Stops delivering (a partition): what arrives meanwhile waits, as unacknowledged TCP data would. */
  hold(): void {
    this.held = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resumes after a partition: held bytes are "retransmitted" now and arrive after the delay. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const floorMs = performance.now() + this.o.conditions().delayMs;
    for (let i = this.head; i < this.q.length; i++) this.q[i]!.atMs = Math.max(this.q[i]!.atMs, floorMs);
    this.lastReleaseMs = Math.max(this.lastReleaseMs, floorMs);
    this.schedule();
  }

  /** Drops everything queued (the connection is being torn down). */
  stop(): void {
    this.done = true;
    this.q.length = 0;
    this.head = 0;
    this.inFlightBytes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private releaseTime(bytes: number): number {
    const c = this.o.conditions();
    const now = performance.now();
    let delay = c.delayMs;
    if (c.jitterMs > 0) delay = Math.max(0, delay + (this.o.random() * 2 - 1) * c.jitterMs);
    if (c.lossRate > 0 && bytes > 0) {
      const segments = Math.ceil(bytes / SEGMENT_BYTES);
      const pChunk = 1 - (1 - c.lossRate) ** segments;
      let rto = c.rtoMs;
      for (let i = 0; i < 10 && this.o.random() < pChunk; i++) {
        delay += rto;
        rto *= 2;
      }
    }
    // Bytes of one connection never overtake each other, whatever the jitter.
    const at = Math.max(Math.max(now, this.o.notBeforeMs) + delay, this.lastReleaseMs);
    this.lastReleaseMs = at;
    return at;
  }

  private push(item: Item): void {
    if (this.done) return;
    this.q.push(item);
    if (item.kind === 'data') this.inFlightBytes += item.chunk.length;
    this.updateFlow();
    if (!this.held && this.timer === undefined) this.flush();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.held || this.done) return;
    const now = performance.now();
    while (this.head < this.q.length && this.q[this.head]!.atMs <= now + EARLY_TOLERANCE_MS) {
      const item = this.q[this.head++]!;
      this.deliver(item);
      if (this.done) return;
    }
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q.splice(0, this.head);
      this.head = 0;
    }
    this.updateFlow();
    this.schedule();
  }

  private schedule(): void {
    if (this.held || this.done || this.timer !== undefined || this.head >= this.q.length) return;
    const waitMs = this.q[this.head]!.atMs - performance.now();
    if (waitMs <= EARLY_TOLERANCE_MS) {
      this.flush();
      return;
    }
    this.timer = setTimeout(() => this.flush(), Math.max(1, Math.round(waitMs)));
  }

  private deliver(item: Item): void {
    const dst = this.o.dst;
    switch (item.kind) {
      case 'data':
        this.inFlightBytes -= item.chunk.length;
        if (!dst.destroyed) dst.write(item.chunk);
        this.o.onDeliver?.(item.chunk.length);
        return;
      case 'end':
        if (!dst.destroyed) dst.end();
        return;
      case 'reset':
        this.stop();
        if (!dst.destroyed) dst.resetAndDestroy();
        return;
    }
  }

  /** Backpressure: stop reading while too much is in flight or the destination is not draining. */
  private updateFlow(): void {
    const src = this.o.src;
    if (src.destroyed) return;
    const pending = this.inFlightBytes + this.o.dst.writableLength;
    if (pending > this.highWaterBytes) {
      if (!src.isPaused()) src.pause();
    } else if (pending < this.highWaterBytes / 2 && src.isPaused()) {
      src.resume();
    }
  }
}
