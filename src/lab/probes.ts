/**
 * The lab's own view of its processes: it polls every node's and edge's /healthz directly (not
 * through the WAN), scrapes conflict counts from the nodes' /metrics, and reports transitions.
 */
import { request } from 'undici';
import type { LabRegion } from './plan.js';

export type Health = 'up' | 'down' | 'unknown';

export interface RegionHealth {
  node: Health;
  edge: Health;
  /** Node /healthz status field (ok, draining, ...), when it answered. */
  nodeStatus: string | undefined;
  conflicts: number | undefined;
  /** Edge's view of regions (from /edge/status), when it answered. */
  edgeView: unknown;
  /** The node's saga summary (GET /v1/sagas: counts by status and the accounts' money total). */
  sagas: unknown;
}

async function getText(
  url: string,
  timeoutMs: number,
): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await request(url, {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.statusCode, text: await res.body.text() };
  } catch {
    return undefined;
  }
}

/** Sums every sample of Prometheus metrics whose name mentions conflicts (not histogram parts). */
export function conflictsFromMetrics(text: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    // A declared counter with no samples yet means zero conflicts, not "unknown".
    if (line.startsWith('# TYPE') && /conflict/i.test(line)) total ??= 0;
    if (line.startsWith('#') || !/conflict/i.test(line)) continue;
    const name = line.split(/[{\s]/)[0] ?? '';
    if (/_(bucket|sum|count|created)$/.test(name)) continue;
    const v = Number(line.trim().split(/\s+/).pop());
    if (Number.isFinite(v)) total = (total ?? 0) + v;
  }
  return total;
}

/**
 * @example
 *   const p = new HealthPoller(plan.regions, (r, what, h) => console.log(r, what, h));
 *   p.start(); p.state('us-east-1').node // 'up'
 */
export class HealthPoller {
  private readonly states = new Map<string, RegionHealth>();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private running = false;

  constructor(
    private readonly regions: readonly LabRegion[],
    private readonly onChange: (region: string, what: 'node' | 'edge', to: Health, from: Health) => void,
    private readonly intervalMs = 1000,
  ) {
    for (const r of regions) {
      this.states.set(r.id, {
        node: 'unknown',
        edge: 'unknown',
        nodeStatus: undefined,
        conflicts: undefined,
        edgeView: undefined,
        sagas: undefined,
      });
    }
  }

  state(region: string): RegionHealth {
    return this.states.get(region) as RegionHealth;
  }

  all(): Record<string, RegionHealth> {
    return Object.fromEntries(this.states);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.pollOnce(), this.intervalMs);
    this.timer.unref();
    void this.pollOnce();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async pollOnce(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.ticks++;
    const scrape = this.ticks % 3 === 1;
    try {
      await Promise.all(
        this.regions.map(async (r) => {
          const s = this.state(r.id);
          const [node, edge, metrics, view, sagas] = await Promise.all([
            getText(`${r.nodeUrl}/healthz`, 800),
            getText(`${r.edgeUrl}/healthz`, 800),
            scrape ? getText(`${r.nodeUrl}/metrics`, 800) : Promise.resolve(undefined),
            scrape ? getText(`${r.edgeUrl}/edge/status`, 800) : Promise.resolve(undefined),
            scrape ? getText(`${r.nodeUrl}/v1/sagas`, 800) : Promise.resolve(undefined),
          ]);
          const nodeH: Health = node?.status === 200 ? 'up' : 'down';
          const edgeH: Health = edge?.status === 200 ? 'up' : 'down';
          if (node) {
            try {
              s.nodeStatus = String((JSON.parse(node.text) as { status?: unknown }).status ?? '');
            } catch {
              s.nodeStatus = undefined;
            }
          } else s.nodeStatus = undefined;
          if (metrics?.status === 200) s.conflicts = conflictsFromMetrics(metrics.text) ?? s.conflicts;
          if (sagas?.status === 200) {
            try {
              s.sagas = JSON.parse(sagas.text);
            } catch {
              // keep the last summary
            }
          }
          if (view?.status === 200) {
            try {
              s.edgeView = JSON.parse(view.text);
            } catch {
              // keep the last view
            }
          }
          if (s.node !== nodeH) {
            const was = s.node;
            s.node = nodeH;
            this.onChange(r.id, 'node', nodeH, was);
          }
          if (s.edge !== edgeH) {
            const was = s.edge;
            s.edge = edgeH;
            this.onChange(r.id, 'edge', edgeH, was);
          }
        }),
      );
    } finally {
      this.running = false;
    }
  }
}
