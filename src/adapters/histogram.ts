/**
 * Reading Prometheus histograms back: the cumulative buckets of one metric from a /metrics text,
 * the difference of two scrapes (the distribution between them), and a quantile interpolated
 * linearly within its bucket, which is how Prometheus' histogram_quantile() estimates it.
 */

/** Cumulative counts, ascending `le`: [upper bound, observations <= bound][]; the last is +Inf. */
export type Buckets = [number, number][];

/**
 * The buckets of histogram `name`, grouped by the value of label `by`.
 * @example
 * histogramBuckets(text, 'meridian_replication_apply_lag_ms', 'origin').get('eu-west-1')
 */
export function histogramBuckets(metrics: string, name: string, by: string): Map<string, Buckets> {
  const out = new Map<string, Buckets>();
  const prefix = `${name}_bucket{`;
  const byRe = new RegExp(`(?:^|,)${by}="([^"]*)"`);
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.lastIndexOf('}');
    const labels = line.slice(prefix.length, close);
    const key = byRe.exec(labels)?.[1];
    const le = /(?:^|,)le="([^"]+)"/.exec(labels)?.[1];
    if (key === undefined || le === undefined) continue;
    const list = out.get(key) ?? [];
    list.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(line.slice(close + 1))]);
    out.set(key, list);
  }
  for (const list of out.values()) list.sort((a, b) => a[0] - b[0]);
  return out;
}

/** What was observed between two scrapes of the same histogram: `after - before`, bucket by bucket. */
export function bucketDelta(after: Buckets | undefined, before: Buckets | undefined): Buckets {
  if (!after) return [];
  const prior = new Map(before ?? []);
  return after.map(([le, n]) => [le, n - (prior.get(le) ?? 0)]);
}

/**
 * The q-quantile (0 < q <= 1), interpolated linearly within the bucket that holds it; NaN when
 * nothing was observed. A rank in the +Inf bucket answers the highest finite bound.
 */
export function bucketQuantile(buckets: Buckets, q: number): number {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
