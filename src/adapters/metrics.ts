/**
 * Prometheus metrics of a region node (prom-client): request rate and latency, replication lag per
 * origin in milliseconds and in changes, conflicts, applied sequence, stream and sync health.
 * Each node has its own registry, so several nodes can live in one process (tests, benchmarks).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry, Summary } from 'prom-client';
import type { PeerOffset } from '../core/clock-offset.js';
import type { RegionStats } from '../core/region.js';
import type { RegionId } from '../core/types.js';

export interface ReplicationView {
  /** Per origin region: how many of its changes we know of but have not applied. */
  lagChanges(): Record<RegionId, number>;
  /** Per origin region: the age of the newest change applied from it, 0 when caught up. */
  lagMs(): Record<RegionId, number>;
  /** Peers whose inbound stream is connected. */
  connectedPeers(): RegionId[];
}

export interface RegionMetricsOptions {
  region: RegionId;
  peers: readonly RegionId[];
  /** Process CPU, memory, event loop lag (default true). */
  processMetrics?: boolean;
}

/**
 * Replication lag buckets (ms): 1 ms wide to 20 ms, 2 ms to 300 ms (the real one-way delays
 * between regions), then coarser. A quantile interpolated within its bucket is off by less than
 * the bucket's width: 1-2 ms where the lag targets are judged.
 */
export const LAG_BUCKETS_MS = [
  ...Array.from({ length: 20 }, (_, i) => i + 1),
  ...Array.from({ length: 140 }, (_, i) => 22 + 2 * i),
  ...Array.from({ length: 70 }, (_, i) => 310 + 10 * i),
  2000,
  5000,
  10_000,
  30_000,
  60_000,
];

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class RegionMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly conflicts: Counter<'collection'>;
  readonly replicationLagObserved: Summary<'origin'>;
  readonly replicationLag: Histogram<'origin'>;
  readonly snapshotsApplied: Counter<'from'>;
  readonly streamReconnects: Counter<'peer'>;
  readonly syncTimeouts: Counter<'collection'>;
  readonly clockSkew: Counter<'from'>;
  readonly quarantined: Counter<'origin'>;
  private stats: (() => RegionStats) | undefined;
  private replication: ReplicationView | undefined;
  private clockOffsets: (() => PeerOffset[]) | undefined;
  private clockRefusing: (() => boolean) | undefined;

  constructor(options: RegionMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ region: options.region });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'meridian_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'meridian_http_request_duration_seconds',
      help: 'HTTP request latency from arrival to the last byte of the answer',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.conflicts = new Counter({
      name: 'meridian_conflicts_total',
      help: 'Concurrent writes resolved by last-writer-wins, by collection',
      labelNames: ['collection'],
      registers,
    });
    this.replicationLagObserved = new Summary({
      name: 'meridian_replication_lag_observed_ms',
      help: 'Per applied remote change: commit here minus its HLC time at the origin (ms), last 60 s',
      labelNames: ['origin'],
      percentiles: [0.5, 0.9, 0.99, 1],
      maxAgeSeconds: 60,
      ageBuckets: 6,
      registers,
    });
    // The same observations as cumulative buckets: unlike the summary's sliding window, two
    // scrapes give the distribution between them (a benchmark's measured window, a dashboard's
    // last minute), and buckets add up across nodes.
    this.replicationLag = new Histogram({
      name: 'meridian_replication_apply_lag_ms',
      help: 'Per applied remote change: commit here minus its HLC time at the origin (ms)',
      labelNames: ['origin'],
      buckets: LAG_BUCKETS_MS,
      registers,
    });
    this.snapshotsApplied = new Counter({
      name: 'meridian_snapshots_applied_total',
      help: 'Snapshots received from peers because we were behind their retained log',
      labelNames: ['from'],
      registers,
    });
    this.streamReconnects = new Counter({
      name: 'meridian_replication_reconnects_total',
      help: 'Inbound replication streams re-opened after an error or end',
      labelNames: ['peer'],
      registers,
    });
    this.syncTimeouts = new Counter({
      name: 'meridian_sync_timeouts_total',
      help: 'Sync writes answered 504 (committed here, not confirmed by enough regions in time)',
      labelNames: ['collection'],
      registers,
    });
    this.quarantined = new Counter({
      name: 'meridian_replication_quarantined_total',
      help: 'Changes skipped and kept aside because they could not be applied here or sent to a peer, by origin',
      labelNames: ['origin'],
      registers,
    });
    this.clockSkew = new Counter({
      name: 'meridian_clock_skew_rejections_total',
      help: 'Remote HLC timestamps too far ahead of the local clock',
      labelNames: ['from'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'meridian_applied_seq',
      help: 'Highest contiguous sequence applied here, per origin region',
      labelNames: ['origin'],
      registers,
      collect() {
        const st = self.stats?.();
        if (!st) return;
        for (const r of [options.region, ...options.peers]) this.set({ origin: r }, st.version[r] ?? 0);
      },
    });
    new Gauge({
      name: 'meridian_replication_lag_changes',
      help: 'Changes of each origin that exist there but are not applied here yet',
      labelNames: ['origin'],
      registers,
      collect() {
        const lag = self.replication?.lagChanges() ?? {};
        for (const r of options.peers) this.set({ origin: r }, lag[r] ?? 0);
      },
    });
    new Gauge({
      name: 'meridian_replication_lag_ms',
      help: 'Age of the newest change applied from each origin (0 when caught up)',
      labelNames: ['origin'],
      registers,
      collect() {
        const lag = self.replication?.lagMs() ?? {};
        for (const r of options.peers) this.set({ origin: r }, lag[r] ?? 0);
      },
    });
    new Gauge({
      name: 'meridian_peer_unacked_changes',
      help: "Our own changes each peer has not acknowledged as durably applied (the peer's lag in changes)",
      labelNames: ['peer'],
      registers,
      collect() {
        const st = self.stats?.();
        if (!st) return;
        for (const [peer, p] of Object.entries(st.peers)) this.set({ peer }, p.behindChanges);
      },
    });
    new Gauge({
      name: 'meridian_replication_stream_connected',
      help: '1 when the inbound stream from the peer is connected',
      labelNames: ['peer'],
      registers,
      collect() {
        const up = new Set(self.replication?.connectedPeers() ?? []);
        for (const r of options.peers) this.set({ peer: r }, up.has(r) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'meridian_clock_offset_seconds',
      help: "Each reachable peer's clock minus ours: the middle of the range its stream messages and acknowledgement round trips bound it to (positive: it is ahead)",
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const o of self.clockOffsets?.() ?? []) this.set({ peer: o.peer }, o.offsetMs / 1000);
      },
    });
    new Gauge({
      name: 'meridian_clock_refusing_writes',
      help: '1 while this region refuses writes because its clock is beyond maxOffsetMs from a majority of its peers',
      registers,
      collect() {
        this.set(self.clockRefusing?.() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'meridian_local_writes',
      help: 'Local mutations committed since this process started',
      registers,
      collect() {
        this.set(self.stats?.().localWrites ?? 0);
      },
    });
    new Gauge({
      name: 'meridian_remote_changes_applied',
      help: 'Remote changes applied since this process started',
      registers,
      collect() {
        this.set(self.stats?.().remoteApplied ?? 0);
      },
    });
  }

  /** Connects the gauges read at scrape time to the node's live state. */
  bind(stats: () => RegionStats, replication: ReplicationView): void {
    this.stats = stats;
    this.replication = replication;
  }

  /** Connects the clock gauges to the core's clock-offset estimates and verdict. */
  bindClock(offsets: () => PeerOffset[], refusing: () => boolean): void {
    this.clockOffsets = offsets;
    this.clockRefusing = refusing;
  }

  /** The Prometheus text exposition. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
