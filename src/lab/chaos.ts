/**
 * Chaos actions against a running lab: one discriminated union shared by the CLI (`meridian chaos`),
 * the dashboard's buttons and the experiments, all of which send it to the lab API.
 */

export type ChaosAction =
  | { action: 'kill'; region: string; withEdge?: boolean }
  | { action: 'restart'; region: string }
  | { action: 'partition'; a: string; b?: string }
  | { action: 'heal'; a?: string; b?: string }
  | { action: 'delay'; a: string; b: string; ms: number }
  | { action: 'skew'; region: string; ms: number };

export const CHAOS_USAGE = `usage: meridian chaos <action> [args] [--dir .meridian] [--lab http://127.0.0.1:8080]
  kill REGION [--with-edge]   stop the region's node abruptly (SIGKILL); --with-edge stops its edge too
  restart REGION              start the region's node (and edge) again
  partition A [B]             cut the WAN between A and B (both ways); without B, isolate A from all
  heal [A [B]]                restore the WAN between A and B; without B, all of A's links; with nothing, all
  delay A B MS                set the one-way delay between A and B to MS (both ways)
  skew REGION MS              restart REGION's node with its clock offset by MS (may be negative)
`;

/** Parses CLI words into an action; throws with the usage on anything malformed. */
export function parseChaos(words: readonly string[]): ChaosAction {
  const [verb, ...rest] = words;
  const flags = rest.filter((w) => w.startsWith('--'));
  const args = rest.filter((w) => !w.startsWith('--'));
  const num = (s: string | undefined, what: string): number => {
    const n = Number(s);
    if (s === undefined || !Number.isFinite(n))
      throw new Error(`${verb}: ${what} must be a number\n${CHAOS_USAGE}`);
    return n;
  };
  const need = (i: number, what: string): string => {
    const v = args[i];
    if (!v) throw new Error(`${verb}: missing ${what}\n${CHAOS_USAGE}`);
    return v;
  };
  switch (verb) {
    case 'kill':
      return { action: 'kill', region: need(0, 'REGION'), withEdge: flags.includes('--with-edge') };
    case 'restart':
      return { action: 'restart', region: need(0, 'REGION') };
    case 'partition':
      return args[1]
        ? { action: 'partition', a: need(0, 'A'), b: args[1] }
        : { action: 'partition', a: need(0, 'A') };
    case 'heal': {
      const out: ChaosAction = { action: 'heal' };
      if (args[0]) out.a = args[0];
      if (args[1]) out.b = args[1];
      return out;
    }
    case 'delay':
      return { action: 'delay', a: need(0, 'A'), b: need(1, 'B'), ms: num(args[2], 'MS') };
    case 'skew':
      return { action: 'skew', region: need(0, 'REGION'), ms: num(args[1], 'MS') };
    default:
      throw new Error(`unknown chaos action '${verb ?? ''}'\n${CHAOS_USAGE}`);
  }
}

/** Validates an action received as JSON (the lab API). */
export function chaosFromJson(raw: unknown): ChaosAction {
  if (typeof raw !== 'object' || raw === null) throw new Error('body must be a JSON object with an "action"');
  const o = raw as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v.length === 0) throw new Error(`"${k}" must be a region id`);
    return v;
  };
  const optStr = (k: string): string | undefined => (o[k] === undefined ? undefined : str(k));
  const num = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`"${k}" must be a number`);
    return v;
  };
  switch (o.action) {
    case 'kill':
      return { action: 'kill', region: str('region'), withEdge: o.withEdge === true };
    case 'restart':
      return { action: 'restart', region: str('region') };
    case 'partition': {
      const b = optStr('b');
      return b ? { action: 'partition', a: str('a'), b } : { action: 'partition', a: str('a') };
    }
    case 'heal': {
      const out: ChaosAction = { action: 'heal' };
      const a = optStr('a');
      const b = optStr('b');
      if (a) out.a = a;
      if (b) out.b = b;
      return out;
    }
    case 'delay':
      return { action: 'delay', a: str('a'), b: str('b'), ms: num('ms') };
    case 'skew':
      return { action: 'skew', region: str('region'), ms: num('ms') };
    default:
      throw new Error('"action" must be one of kill, restart, partition, heal, delay, skew');
  }
}

export function describeChaos(a: ChaosAction): string {
  switch (a.action) {
    case 'kill':
      return `kill ${a.region}${a.withEdge ? ' (with its edge)' : ''}`;
    case 'restart':
      return `restart ${a.region}`;
    case 'partition':
      return a.b ? `partition ${a.a} | ${a.b}` : `isolate ${a.a}`;
    case 'heal':
      return a.a ? (a.b ? `heal ${a.a} - ${a.b}` : `heal ${a.a}`) : 'heal all links';
    case 'delay':
      return `delay ${a.a} <-> ${a.b} ${a.ms} ms one way`;
    case 'skew':
      return `skew ${a.region} clock by ${a.ms} ms`;
  }
}
