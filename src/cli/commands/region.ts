/** `meridian region`: not built yet (see the open issues). */
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('meridian region: not implemented yet\n');
  return 2;
}
