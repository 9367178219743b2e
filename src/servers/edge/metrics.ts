/**
 * Prometheus metrics of one edge, read from its routing table at scrape time (so the hot path pays
 * only for the per-reason counter), in a registry of its own so several edges fit in one process.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { RoutingTable } from '../../core/routing/index.js';

export interface EdgeMetrics {
  registry: Registry;
  /** Counts one answer by route reason and status class (2xx, 4xx, ...). */
  answered(reason: string, status: number): void;
  transitions: Counter<'region' | 'to'>;
  /** Counts a client request or connection refused over a limit (http1.ts). */
  refused(reason: string): void;
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
  // Counted in plain numbers on the hot path (prom-client hashes the labels on every inc, even
  // through a child) and handed to prom-client at scrape time.
  const answerCounts = new Map<string, number[]>();
  new Counter({
    name: 'meridian_edge_answers_total',
    help: 'Answers sent to clients, by route reason and status class',
    labelNames: ['reason', 'code'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, byClass] of answerCounts) {
        byClass.forEach((n, cls) => {
          if (n > 0) this.inc({ reason, code: `${cls}xx` }, n);
        });
      }
    },
  });
  const answered = (reason: string, status: number): void => {
    let byClass = answerCounts.get(reason);
    if (!byClass) {
      byClass = [0, 0, 0, 0, 0, 0];
      answerCounts.set(reason, byClass);
    }
    const cls = (status / 100) | 0;
    byClass[cls] = (byClass[cls] ?? 0) + 1;
  };
  const transitions = new Counter({
    name: 'meridian_edge_health_transitions_total',
    help: 'Health transitions of each region as seen by this edge',
    labelNames: ['region', 'to'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'meridian_edge_client_refusals_total',
    help: 'Client connections and requests the edge refused over a limit, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Off the hot path: only refused clients pay for the label lookup.
  const refused = (reason: string): void => refusals.inc({ reason });
  return { registry, answered, transitions, refused };
}
