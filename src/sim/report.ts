/**
 * Text output of the simulator: the summary table of a run, a sweep's totals, and for a violation
 * the checker, a short excerpt of the history around it and the command that replays it. Nothing
 * here reads the wall clock, so the same seed prints the same bytes.
 */
import { describeFault, describeMix, faultMixFor } from './faults.js';
import type { Figures } from './figures.js';
import type { OpRecord, Violation } from './history.js';
import type { RunResult, SimOptions } from './simulator.js';
import { syncAcksFor } from './workload.js';

export function fmtMs(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}

function fmtDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A markdown table with aligned columns. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const width = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  return [line(head), `| ${width.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join(
    '\n',
  );
}

/** The exact command that replays one seed. */
export function replayCommand(o: SimOptions, seed = o.seed): string {
  const parts = [
    'meridian sim',
    `--seed ${seed}`,
    `--regions ${o.regions.join(',')}`,
    `--duration ${fmtDuration(o.durationMs)}`,
    `--faults ${o.faults}`,
    `--workload ${o.workload}`,
    `--rate ${o.opsPerSec}`,
  ];
  for (const [bug, on] of Object.entries(o.bugs ?? {})) if (on) parts.push(`--bug ${bug}`);
  for (const [bug, on] of Object.entries(o.healthBugs ?? {})) if (on) parts.push(`--bug ${bug}`);
  if (o.health && Object.keys(o.healthBugs ?? {}).length === 0) parts.push('--health');
  return parts.join(' ');
}

export function describeOp(op: OpRecord): string {
  const arg =
    op.kind === 'put'
      ? ` ${op.value}${op.home ? ` (home ${op.home})` : ''}`
      : op.kind === 'increment'
        ? ` +${op.by}`
        : op.members
          ? ` [${op.members.join(',')}]`
          : '';
  let out = `${op.result}`;
  if (op.result === 'ok' && op.kind === 'get')
    out += ` ${op.answer === undefined ? '(absent)' : JSON.stringify(op.answer)}`;
  else if (op.result === 'ok' && op.kind === 'increment') out += ` value ${JSON.stringify(op.answer)}`;
  if (op.errorCode) out += ` ${op.errorCode}`;
  if (op.replayRegion) out += ` replay ${op.replayRegion}`;
  if (op.change) out += ` [${op.change.origin}#${op.change.seq} ${op.change.hlc}]`;
  const who = `s${op.session}${op.token ? '+token' : ''}`;
  return `op #${op.id} ${who} ${op.kind} ${op.collection}/${op.key}${arg} @${op.region} -> ${out}`;
}

/** The operations and faults around a violation, in time order (a dozen lines or so). */
export function excerpt(r: RunResult, v: Violation, maxLines = 14): string[] {
  const at = v.atMs ?? r.history.endAtMs;
  const evidence = new Set(v.ops ?? []);
  const lines: { t: number; order: number; text: string }[] = [];
  const near = r.history.ops.filter(
    (op) =>
      evidence.has(op.id) ||
      (v.key !== undefined &&
        op.collection === v.collection &&
        op.key === v.key &&
        op.startAtMs >= at - 3000 &&
        op.startAtMs <= at + 200),
  );
  for (const op of near.slice(-maxLines)) {
    lines.push({
      t: op.startAtMs,
      order: op.id,
      text: `${fmtMs(op.startAtMs)}${evidence.has(op.id) ? ' *' : '  '} ${describeOp(op)} (answered ${op.endAtMs >= 0 ? fmtMs(op.endAtMs) : 'never'})`,
    });
  }
  for (const f of r.history.faults) {
    if (f.atMs >= at - 3000 && f.atMs <= at + 200) {
      lines.push({ t: f.atMs, order: -1, text: `${fmtMs(f.atMs)}   fault: ${describeFault(f.fault)}` });
    }
  }
  lines.sort((a, b) => a.t - b.t || a.order - b.order);
  return lines.slice(-maxLines).map((l) => l.text);
}

export function header(o: SimOptions): string {
  return `meridian sim: seed ${o.seed}, regions ${o.regions.join(',')}, ${fmtDuration(o.durationMs)}, faults ${o.faults}, workload ${o.workload}, ${o.opsPerSec} ops/s, sync acks ${syncAcksFor(o.seed, o.regions.length)}`;
}

/**
 * The fault mix of a run, one line with every rate and size: a preset's, or what `--faults random`
 * drew for this seed (the same on replay).
 */
export function mixLine(o: SimOptions): string {
  return `fault mix: ${describeMix(faultMixFor(o.faults, o.seed))}`;
}

export function figureRows(f: Figures): (string | number)[][] {
  const rows: (string | number)[][] = [
    ['operations', f.ops.total],
    [
      '  ok / indefinite / refused / unavailable',
      `${f.ops.ok} / ${f.ops.indefinite} / ${f.ops.refused} / ${f.ops.unavailable}`,
    ],
    [
      '  by kind',
      Object.entries(f.opsByKind)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    ],
    ['conflicts resolved', f.conflicts],
    ['sync writes timed out (504, indefinite)', f.syncTimeouts],
    ['remote HLCs too far ahead (applied, clock kept)', f.clockSkewRejections],
    ['snapshots applied', f.snapshots],
    ['stale reads by sessions without a token', f.staleReadsWithoutToken],
    [
      'RPO (async writes lost with a lost region)',
      f.rpo
        ? `${f.rpo.lostWrites} writes of ${f.rpo.region}, spanning ${f.rpo.spanMs} ms, oldest ${f.rpo.oldestBeforeLossMs} ms before the loss`
        : 'no region lost',
    ],
    [
      'messages sent / lost / cut / duplicated / reordered / spiked',
      `${f.network.sent} / ${f.network.lost} / ${f.network.partitioned} / ${f.network.duplicated} / ${f.network.reordered} / ${f.network.spiked}`,
    ],
    [
      'faults',
      Object.entries(f.faults)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none',
    ],
    ['simulated time', fmtMs(f.simulatedMs)],
    ['events', f.eventsRun],
  ];
  return rows;
}

/** The full report of one run. */
export function runReport(r: RunResult, checkerNames: readonly string[]): string {
  const out: string[] = [header(r.options), mixLine(r.options), ''];
  const rows = figureRows(r.figures);
  rows.splice(rows.length - 3, 0, [
    'commits failed / torn (of which on disk)',
    `${r.disk.failed} / ${r.disk.torn} (${r.disk.tornLanded})`,
  ]);
  out.push(table(['figure', 'value'], rows), '');
  out.push(
    table(
      ['replication link', 'changes', 'lag p50 ms', 'lag p99 ms', 'max ms'],
      r.figures.lag.map((l) => [l.link, l.samples, l.p50Ms, l.p99Ms, l.maxMs]),
    ),
    '',
  );
  const byChecker = new Map<string, number>();
  for (const v of r.violations) byChecker.set(v.checker, (byChecker.get(v.checker) ?? 0) + 1);
  const names = [...checkerNames, ...[...byChecker.keys()].filter((n) => !checkerNames.includes(n))];
  out.push(
    table(
      ['checker', 'result'],
      names.map((n) => [n, byChecker.has(n) ? `VIOLATED (${byChecker.get(n)})` : 'ok']),
    ),
  );
  out.push('');
  for (const v of r.violations.slice(0, 3)) out.push(...violationReport(r, v), '');
  if (r.violations.length > 3) out.push(`(${r.violations.length - 3} more violations not shown)`, '');
  out.push(r.violations.length === 0 ? 'result: ok' : `result: ${r.violations.length} violation(s)`);
  return `${out.join('\n')}\n`;
}

export function violationReport(r: RunResult, v: Violation): string[] {
  return [
    `VIOLATION of ${v.checker} (seed ${r.options.seed})`,
    `  ${v.message}`,
    `  ${mixLine(r.options)}`,
    '  history:',
    ...excerpt(r, v).map((l) => `    ${l}`),
    `  replay: ${replayCommand(r.options)}`,
  ];
}
