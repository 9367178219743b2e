/**
 * The layers of src/ and what each may import (docs/architecture.md, Layers). This parses the
 * imports of every source file under src/ (static, re-exports, side-effect and dynamic, type-only
 * included: a type couples layers as much as a value) and prints each import that breaks a rule.
 * Tests (*.test.ts) are not held to it: a core test may drive the core on the simulator's virtual
 * time. What the core itself may not do (clock, randomness, timers, I/O) is core-boundary.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';

type Layer = 'core' | 'adapters' | 'sim' | 'servers' | 'lab' | 'cli';

/**
 * The rule of each layer: the layers it may import (its own included). core is the deterministic
 * state machine everything runs; the simulator runs the core alone, so the code it proves is the
 * code that ships, and any region data it needs is core data; adapters are the I/O the servers
 * plug into the core; servers are the processes; the lab runs servers; the CLI starts all of them.
 */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  core: ['core'],
  adapters: ['core', 'adapters'],
  sim: ['core', 'sim'],
  servers: ['core', 'adapters', 'servers'],
  lab: ['core', 'adapters', 'servers', 'lab'],
  cli: ['core', 'adapters', 'sim', 'servers', 'lab', 'cli'],
};
const LAYERS = Object.keys(MAY_IMPORT) as Layer[];
/** Outside src/, a source may import only the project's data (the region table). */
const DATA_DIR = 'data/';
const NODE_BUILTINS = new Set(builtinModules);

interface SourceFile {
  /** Relative to the project root, with forward slashes: src/sim/simulator.ts. */
  path: string;
  text: string;
}

/** Code only: comments (where @example blocks live) are stripped, keeping their line breaks. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ''))
    .replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const IMPORT_RE =
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The module specifiers a file imports, with their line numbers. */
function importsOf(text: string): { spec: string; line: number }[] {
  const src = code(text);
  const out: { spec: string; line: number }[] = [];
  for (const m of src.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2]!;
    out.push({ spec, line: src.slice(0, m.index).split('\n').length });
  }
  return out;
}

function layerOf(path: string): Layer | undefined {
  const [top, layer] = path.split('/');
  return top === 'src' && (LAYERS as string[]).includes(layer!) ? (layer as Layer) : undefined;
}

/** Every import of `files` that breaks its layer's rule, one line each. */
function violations(files: readonly SourceFile[]): string[] {
  const problems: string[] = [];
  for (const f of files) {
    const from = layerOf(f.path);
    if (!from) {
      problems.push(`${f.path}: not in a layer (${LAYERS.join(', ')}): add it to the rules`);
      continue;
    }
    for (const { spec, line } of importsOf(f.text)) {
      const at = `${f.path}:${line}: imports '${spec}'`;
      if (!spec.startsWith('.')) {
        const bare = spec.startsWith('node:') ? spec.slice(5) : spec;
        if (from === 'core' && !NODE_BUILTINS.has(bare)) {
          problems.push(`${at}: core imports no package (it runs the same everywhere, on what it is handed)`);
        }
        continue;
      }
      const target = normalize(join(dirname(f.path), spec))
        .split('\\')
        .join('/');
      const to = layerOf(target);
      if (to === undefined) {
        if (!target.startsWith(DATA_DIR)) problems.push(`${at}: outside src/ (only ${DATA_DIR} may be)`);
        continue;
      }
      if (!MAY_IMPORT[from].includes(to)) {
        problems.push(`${at}: ${from} imports ${to} (${from} may import ${MAY_IMPORT[from].join(', ')})`);
      }
    }
  }
  return problems;
}

function sources(dir: string, out: SourceFile[] = []): SourceFile[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) {
      out.push({ path: relative('.', p).split('\\').join('/'), text: readFileSync(p, 'utf8') });
    }
  }
  return out;
}

describe('layering of src/', () => {
  const files = sources('src');

  it('has sources in every layer, and finds their imports', () => {
    const imports = files.reduce((n, f) => n + importsOf(f.text).length, 0);
    assert.ok(imports > 2 * files.length, `only ${imports} imports found in ${files.length} files`);
    for (const layer of LAYERS) {
      assert.ok(
        files.some((f) => layerOf(f.path) === layer),
        `no source under src/${layer}`,
      );
    }
  });

  it('every import follows its layer rule', () => {
    const problems = violations(files);
    assert.deepEqual(problems, [], `layering broken:\n${problems.join('\n')}`);
  });

  it('the checker catches a planted import of each kind', () => {
    const planted: SourceFile[] = [
      { path: 'src/core/a.ts', text: "import { x } from '../sim/simulator.js';" },
      { path: 'src/core/deep/b.ts', text: "import type { X } from '../../adapters/metrics.js';" },
      { path: 'src/core/c.ts', text: "import pino from 'pino';" },
      { path: 'src/sim/d.ts', text: "export { loadRegionTable } from '../adapters/region-table.js';" },
      { path: 'src/servers/edge/e.ts', text: "const m = await import('../../lab/lab.js');" },
      { path: 'src/servers/f.ts', text: "import '../sim/time.js';" },
      {
        path: 'src/adapters/replication/g.ts',
        text: "import {\n  a,\n  b,\n} from '../../servers/region/node.js';",
      },
      { path: 'src/lab/h.ts', text: "import { t } from '../../test/support/cluster.js';" },
      { path: 'src/tools/i.ts', text: '' },
      {
        path: 'src/sim/j.ts',
        text: "/**\n * import '../servers/a.js'\n */\nimport { x } from '../servers/b.js';",
      },
    ];
    const found = violations(planted);
    assert.equal(found.length, planted.length, found.join('\n'));
    assert.match(found.join('\n'), /src\/sim\/j\.ts:4: imports '\.\.\/servers\/b\.js'/);
    assert.match(
      found.join('\n'),
      /src\/adapters\/replication\/g\.ts:1: imports '\.\.\/\.\.\/servers\/region\/node\.js'/,
    );
  });

  it('the checker lets through what each rule allows, and comments', () => {
    const allowed: SourceFile[] = [
      {
        path: 'src/core/a.ts',
        text: "import table from '../../data/aws-regions.json' with { type: 'json' };",
      },
      {
        path: 'src/core/b.ts',
        text: "import { createHash } from 'node:crypto';\n// import x from '../sim/x.js';",
      },
      {
        path: 'src/sim/c.ts',
        text: "import { RegionCore } from '../core/region.js';\n/** import '../adapters/x.js' */",
      },
      {
        path: 'src/servers/d.ts',
        text: "import { a } from '../adapters/config.js';\nimport fastify from 'fastify';",
      },
      { path: 'src/lab/e.ts', text: "import { zone } from '../servers/dns/zone.js';" },
      { path: 'src/cli/f.ts', text: "const m = await import('../sim/simulator.js');" },
    ];
    assert.deepEqual(violations(allowed), []);
  });
});
