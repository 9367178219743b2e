/**
 * Read-your-writes, three ways. A client writes and at once reads back, and the read is answered
 * by a region that did not take the write:
 * - scenario "pinned elsewhere": the user's profile is homed in another region; the edge replays the
 *   write there, and the read would be served locally;
 * - scenario "roaming": the write goes through one region's edge and the read through another's
 *   (a phone that changed network).
 * Each with version tokens (Meridian-Min-Version), with the edges' sticky cookies only, and with
 * neither. A violation is a read that does not return the value just written.
 */
import { randomBytes } from 'node:crypto';
import { homeOfNewKey } from '../../core/collection.js';
import type { CollectionSpec } from '../../core/types.js';
import { quantile } from '../stats.js';
import { barsSvg, table } from '../svg.js';
import { type CallResult, call, cookieHeader, progress } from './http.js';
import type { LabTarget } from './target.js';

type Mode = 'tokens' | 'sticky cookies' | 'neither';
const MODES: Mode[] = ['tokens', 'sticky cookies', 'neither'];

export interface ConsistencyRow {
  scenario: string;
  mode: Mode;
  trials: number;
  violations: number;
  errors: number;
  readP50Ms: number;
  readP99Ms: number;
}

export interface ConsistencyResult {
  rows: ConsistencyRow[];
  table: string;
  svg: string;
}

function readHeaders(mode: Mode, w: CallResult): Record<string, string> {
  if (mode === 'tokens' && w.token) return { 'meridian-min-version': w.token };
  if (mode === 'sticky cookies') {
    const c = cookieHeader(w.setCookie);
    return c ? { cookie: c } : {};
  }
  return {};
}

/** Waits until every region's node has applied `token` (so a trial starts from a settled state). */
async function settle(
  regions: readonly { nodeUrl: string }[],
  path: string,
  token: string | undefined,
): Promise<void> {
  if (!token) return;
  await Promise.all(
    regions.map((r) =>
      call(`${r.nodeUrl}${path}`, {
        headers: { 'meridian-min-version': token, 'meridian-max-wait-ms': '3000' },
      }),
    ),
  );
}

/** The lab's `profiles` collection, as the home rule sees it (pinned, no residency). */
const PROFILES: CollectionSpec = { name: 'profiles', policy: 'pinned', replication: { mode: 'async' } };

/** `base` with the first suffix whose home, by the rule every region applies, is `home`. */
function keyHomedIn(home: string, base: string, regions: readonly string[]): string {
  for (let n = 0; ; n++) {
    const key = `${base}-${n}`;
    if (homeOfNewKey(PROFILES, regions, key) === home) return key;
  }
}

/** @example await consistency(target, { trials: 40, log: console.log }) */
export async function consistency(
  t: LabTarget,
  opts: { trials: number; log: (s: string) => void },
): Promise<ConsistencyResult> {
  const regions = t.plan.regions;
  if (regions.length < 2) throw new Error('consistency needs at least two regions');
  const ids = regions.map((r) => r.id);
  const run = randomBytes(3).toString('hex');
  const rows: ConsistencyRow[] = [];
  const total = opts.trials * MODES.length * 2;
  let done = 0;
  let lastShown = 0;
  await t.traffic(false);
  for (const scenario of ['pinned elsewhere', 'roaming'] as const) {
    for (const mode of MODES) {
      const lat: number[] = [];
      let violations = 0;
      let errors = 0;
      for (let i = 0; i < opts.trials; i++) {
        const a = regions[i % regions.length]!;
        const b = regions[(i + 1) % regions.length]!;
        const value = { v: `${run}-${i}`, mode };
        let w: CallResult;
        let readUrl: string;
        if (scenario === 'pinned elsewhere') {
          // A profile the home rule puts in b (first write at b's node), then the user writes and
          // reads at a's edge.
          const key = keyHomedIn(b.id, `cons-${run}-${mode.replace(' ', '-')}-${i}`, ids);
          const init = await call(`${b.nodeUrl}/v1/profiles/${key}`, {
            method: 'PUT',
            body: { v: 'initial' },
          });
          // Everyone must know the key's home before the user writes it elsewhere.
          await settle(regions, `/v1/profiles/${key}`, init.token);
          w = await call(`${a.edgeUrl}/v1/profiles/${key}`, { method: 'PUT', body: value });
          readUrl = `${a.edgeUrl}/v1/profiles/${key}`;
        } else {
          const key = `cons-${run}-${mode.replace(' ', '-')}-${i}`;
          const init = await call(`${b.nodeUrl}/v1/settings/${key}`, {
            method: 'PUT',
            body: { v: 'initial' },
          });
          await settle(regions, `/v1/settings/${key}`, init.token);
          w = await call(`${a.edgeUrl}/v1/settings/${key}`, { method: 'PUT', body: value });
          readUrl = `${b.edgeUrl}/v1/settings/${key}`;
        }
        if (w.status !== 200) {
          errors++;
        } else {
          const r = await call(readUrl, { headers: readHeaders(mode, w) });
          lat.push(r.endMs - r.startMs);
          if (r.status !== 200) errors++;
          else {
            let got: unknown;
            try {
              got = (JSON.parse(r.body) as { value?: { v?: unknown } }).value?.v;
            } catch {
              got = undefined;
            }
            if (got !== value.v) violations++;
          }
        }
        done++;
        if (Date.now() - lastShown > 1000) {
          lastShown = Date.now();
          progress('trials', done / total, `${scenario}, ${mode}`);
        }
      }
      lat.sort((x, y) => x - y);
      rows.push({
        scenario,
        mode,
        trials: opts.trials,
        violations,
        errors,
        readP50Ms: quantile(lat, 0.5),
        readP99Ms: quantile(lat, 0.99),
      });
    }
  }
  progress('trials', 1);
  opts.log('');
  await t.traffic(true);
  const tbl = table(
    ['scenario', 'mode', 'trials', 'RYW violations', 'violation %', 'errors', 'read p50 ms', 'read p99 ms'],
    rows.map((r) => [
      r.scenario,
      r.mode,
      r.trials,
      r.violations,
      (100 * r.violations) / Math.max(1, r.trials - r.errors),
      r.errors,
      r.readP50Ms,
      r.readP99Ms,
    ]),
  );
  const svg = barsSvg(
    'Read-your-writes violations (% of reads that missed the write just made)',
    rows.map((r) => ({
      label: `${r.scenario}: ${r.mode}`,
      bars: [
        { name: 'violation %', value: (100 * r.violations) / Math.max(1, r.trials - r.errors) },
        { name: 'read p50 ms', value: r.readP50Ms },
      ],
    })),
    { yLabel: '% / ms' },
  );
  return { rows, table: tbl, svg };
}
