/** Minimal SVG plots for experiment reports (no browser needed to produce them, opens anywhere). */

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
export const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#bcbd22',
  '#7f7f7f',
  '#d62728',
];

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(
  title: string,
  f: Frame,
  xLabel: string,
  yLabel: string,
  xs: [number, number],
  ys: [number, number],
  xTicks = true,
) {
  const sx = (x: number) => f.left + ((x - xs[0]) / (xs[1] - xs[0] || 1)) * (f.width - f.left - f.right);
  const sy = (y: number) =>
    f.height - f.bottom - ((y - ys[0]) / (ys[1] - ys[0] || 1)) * (f.height - f.top - f.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${f.width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${f.width / 2}" y="${f.height - 6}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(14 ${f.height / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = ys[0] + ((ys[1] - ys[0]) * i) / 5;
    parts.push(
      `<line x1="${f.left}" x2="${f.width - f.right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`,
      `<text x="${f.left - 6}" y="${sy(y) + 4}" text-anchor="end" fill="#555">${+y.toFixed(1)}</text>`,
    );
    const x = xs[0] + ((xs[1] - xs[0]) * i) / 5;
    if (xTicks)
      parts.push(
        `<text x="${sx(x)}" y="${f.height - f.bottom + 16}" text-anchor="middle" fill="#555">${+x.toFixed(1)}</text>`,
      );
  }
  parts.push(
    `<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.height - f.bottom}" stroke="#333"/>`,
    `<line x1="${f.left}" x2="${f.width - f.right}" y1="${f.height - f.bottom}" y2="${f.height - f.bottom}" stroke="#333"/>`,
  );
  return { sx, sy, parts };
}

export interface ScatterSeries {
  name: string;
  points: [number, number][];
  color?: string;
}

/** A scatter plot with optional vertical markers (e.g. "region killed"). */
export function scatterSvg(
  title: string,
  series: ScatterSeries[],
  opts: {
    xLabel: string;
    yLabel: string;
    markers?: { x: number; label: string }[];
    width?: number;
    height?: number;
  },
): string {
  const f: Frame = {
    width: opts.width ?? 860,
    height: opts.height ?? 420,
    left: 60,
    right: 170,
    top: 30,
    bottom: 40,
  };
  const all = series.flatMap((s) => s.points);
  const xs: [number, number] = [Math.min(...all.map((p) => p[0]), 0), Math.max(...all.map((p) => p[0]), 1)];
  const ys: [number, number] = [0, Math.max(...all.map((p) => p[1]), 1) * 1.05];
  const { sx, sy, parts } = frame(title, f, opts.xLabel, opts.yLabel, xs, ys);
  for (const m of opts.markers ?? []) {
    parts.push(
      `<line x1="${sx(m.x)}" x2="${sx(m.x)}" y1="${f.top}" y2="${f.height - f.bottom}" stroke="#d62728" stroke-dasharray="4 3"/>`,
      `<text x="${sx(m.x) + 4}" y="${f.top + 12}" fill="#d62728">${esc(m.label)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const c = s.color ?? COLORS[i % COLORS.length];
    for (const [x, y] of s.points)
      parts.push(
        `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.2" fill="${c}" opacity="0.75"/>`,
      );
    parts.push(
      `<circle cx="${f.width - f.right + 16}" cy="${f.top + 10 + i * 18}" r="5" fill="${c}"/>`,
      `<text x="${f.width - f.right + 26}" y="${f.top + 14 + i * 18}">${esc(s.name)} (${s.points.length})</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export interface BarGroup {
  label: string;
  bars: { name: string; value: number }[];
  /** A horizontal tick drawn across the group (e.g. the RTT floor). */
  floor?: number;
}

/** Grouped bars, with an optional floor tick per group. */
export function barsSvg(
  title: string,
  groups: BarGroup[],
  opts: { yLabel: string; floorLabel?: string; width?: number; height?: number },
): string {
  const f: Frame = {
    width: opts.width ?? Math.max(600, 120 + groups.length * 110),
    height: opts.height ?? 460,
    left: 60,
    right: 150,
    top: 30,
    bottom: 110,
  };
  const max =
    Math.max(
      1,
      ...groups.flatMap((g) => [...g.bars.map((b) => b.value), g.floor ?? 0]).filter(Number.isFinite),
    ) * 1.08;
  const { sy, parts } = frame(title, f, '', opts.yLabel, [0, 1], [0, max], false);
  const inner = f.width - f.left - f.right;
  const gw = inner / Math.max(1, groups.length);
  const names = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.name)))];
  groups.forEach((g, gi) => {
    const x0 = f.left + gi * gw + gw * 0.1;
    const bw = (gw * 0.8) / Math.max(1, g.bars.length);
    g.bars.forEach((b, bi) => {
      const v = Number.isFinite(b.value) ? b.value : 0;
      const c = COLORS[names.indexOf(b.name) % COLORS.length];
      parts.push(
        `<rect x="${(x0 + bi * bw).toFixed(1)}" y="${sy(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(sy(0) - sy(v)).toFixed(1)}" fill="${c}"/>`,
        `<text x="${(x0 + bi * bw + bw / 2).toFixed(1)}" y="${(sy(v) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${Number.isFinite(b.value) ? Math.round(b.value) : '–'}</text>`,
      );
    });
    if (g.floor !== undefined) {
      parts.push(
        `<line x1="${x0 - 4}" x2="${x0 + gw * 0.8 + 4}" y1="${sy(g.floor)}" y2="${sy(g.floor)}" stroke="black" stroke-width="2" stroke-dasharray="5 3"/>`,
      );
    }
    parts.push(
      `<text transform="translate(${(x0 + gw * 0.15).toFixed(1)} ${f.height - f.bottom + 14}) rotate(28)" font-size="11">${esc(g.label)}</text>`,
    );
  });
  names.forEach((n, i) => {
    parts.push(
      `<rect x="${f.width - f.right + 12}" y="${f.top + 4 + i * 18}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${f.width - f.right + 26}" y="${f.top + 13 + i * 18}">${esc(n)}</text>`,
    );
  });
  if (opts.floorLabel) {
    const y = f.top + 8 + names.length * 18;
    parts.push(
      `<line x1="${f.width - f.right + 10}" x2="${f.width - f.right + 24}" y1="${y + 4}" y2="${y + 4}" stroke="black" stroke-width="2" stroke-dasharray="5 3"/>`,
      `<text x="${f.width - f.right + 28}" y="${y + 8}">${esc(opts.floorLabel)}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** A fixed-width text table, as every experiment prints one. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [
    head,
    ...rows.map((r) =>
      r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(1)) : c)),
    ),
  ];
  const w = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join('  ');
  return [
    line(cells[0] as string[]),
    w.map((n) => '-'.repeat(n)).join('  '),
    ...cells.slice(1).map((r) => line(r as string[])),
  ].join('\n');
}
