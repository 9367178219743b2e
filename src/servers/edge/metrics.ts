/**
 * Prometheus metrics of one edge, read from its routing table at scrape time (so the hot path pays
 * only for the per-reason counter), in a registry of its own so several edges fit in one process.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoutingTable } from '../../core/routing/index.js';

export interface EdgeMetrics {
  registry: Registry;
  /** Answers by route reason and status class (2xx, 4xx, ...). */
  answers: Counter<'reason' | 'code'>;
  durationSeconds: Histogram;
  transitions: Counter<'region' | 'to'>;
}

export function edgeMetrics(edgeId: string, table: RoutingTable): EdgeMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ edge: edgeId });
  new Gauge({
    name: 'meridian_edge_region_up',
    help: 'Whether the edge considers the region healthy (1) or ejected (0)',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      for (const s of table.snapshot()) this.set({ region: s.region }, s.status === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'meridian_edge_region_srtt_ms',
    help: "Smoothed RTT of the edge's probes to the region, in milliseconds",
    labelNames: ['region'],
    registers: [registry],
    collect() {
      for (const s of table.snapshot()) if (s.srttMs !== undefined) this.set({ region: s.region }, s.srttMs);
    },
  });
  new Counter({
    name: 'meridian_edge_region_requests_total',
    help: 'Requests sent to the region (first tries, retries and replays)',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of table.snapshot()) this.inc({ region: s.region }, s.requests);
    },
  });
  new Counter({
    name: 'meridian_edge_region_errors_total',
    help: 'Requests that failed in the region: connection errors, timeouts, 5xx',
    labelNames: ['region'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of table.snapshot()) this.inc({ region: s.region }, s.errors);
    },
  });
  const answers = new Counter({
    name: 'meridian_edge_answers_total',
    help: 'Answers sent to clients, by route reason and status class',
    labelNames: ['reason', 'code'] as const,
    registers: [registry],
  });
  const durationSeconds = new Histogram({
    name: 'meridian_edge_request_duration_seconds',
    help: 'Time from the request arriving at the edge to its answer headers being sent',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const transitions = new Counter({
    name: 'meridian_edge_health_transitions_total',
    help: 'Health transitions of each region as seen by this edge',
    labelNames: ['region', 'to'] as const,
    registers: [registry],
  });
  return { registry, answers, durationSeconds, transitions };
}
