/**
 * The import rules of docs/ARCHITECTURE.md, read from its table and checked against every
 * import in src/: the document cannot drift from the code without this test failing.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** Layer name -> the layers it may import, from the table between the markers. */
function readRules(): Map<string, Set<string>> {
  const doc = readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const start = doc.indexOf('<!-- import-rules:start -->');
  const end = doc.indexOf('<!-- import-rules:end -->');
  assert.ok(start >= 0 && end > start, 'docs/ARCHITECTURE.md lost its import-rules markers');
  const rules = new Map<string, Set<string>>();
  for (const line of doc.slice(start, end).split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    // | layer | what | may import |  ->  ['', layer, what, imports, '']
    if (cells.length < 5 || cells[1] === 'layer' || cells[1]?.startsWith('---')) continue;
    // `errors.ts` and `errors` name the same layer: top-level files are written either way.
    const name = (cell: string): string => cell.trim().replace(/\.ts$/, '');
    const allowed = (cells[3] ?? '').split(',').map(name);
    rules.set(name(cells[1]!), new Set(allowed.filter((s) => s !== '')));
  }
  return rules;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `src/merge/apply.ts` -> `merge`; `src/errors.ts` -> `errors`. */
function layerOf(file: string): string {
  return relative(SRC, file).split('/')[0]!.replace(/\.ts$/, '');
}

/** Every module a file names: static, type-only, re-exports and dynamic imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g;
  return [...text.matchAll(pattern)].map((m) => m[1]!);
}

function resolveLocal(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return resolve(dirname(file), specifier).replace(/\.js$/, '.ts');
}

const files = sourceFiles(SRC);
const rules = readRules();

test('every layer of src/ is in the table of docs/ARCHITECTURE.md', () => {
  const layers = new Set(files.map(layerOf));
  assert.deepEqual(
    [...layers].filter((l) => !rules.has(l)).sort(),
    [],
    'add a row for each new layer',
  );
  for (const [layer, allowed] of rules) {
    for (const other of allowed)
      assert.ok(rules.has(other), `${layer} may import unknown ${other}`);
  }
});

test('no import runs against the table: every arrow points down', () => {
  const broken: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    for (const specifier of importsOf(file)) {
      const target = resolveLocal(file, specifier);
      if (target === undefined) continue;
      const to = layerOf(target);
      if (to !== from && !rules.get(from)?.has(to)) {
        broken.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (${from} -> ${to})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('the table itself has no loop between layers', () => {
  const state = new Map<string, 'open' | 'done'>();
  const visit = (layer: string, path: string[]): void => {
    if (state.get(layer) === 'done') return;
    assert.notEqual(
      state.get(layer),
      'open',
      `layers import in a loop: ${[...path, layer].join(' -> ')}`,
    );
    state.set(layer, 'open');
    for (const next of rules.get(layer) ?? []) visit(next, [...path, layer]);
    state.set(layer, 'done');
  };
  for (const layer of rules.keys()) visit(layer, []);
});

test('no two files import each other, directly or round a loop (type-only imports too)', () => {
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const targets = importsOf(file)
      .map((s) => resolveLocal(file, s))
      .filter((t): t is string => t !== undefined);
    edges.set(file, targets);
  }
  const loops: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === 'open') {
        const loop = stack.slice(stack.indexOf(next)).map((f) => relative(ROOT, f));
        loops.push([...loop, relative(ROOT, next)].join(' -> '));
      } else if (state.get(next) === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (state.get(file) === undefined) visit(file);
  assert.deepEqual(loops, []);
});

test('only runtime/ imports onnxruntime-node', () => {
  const outside = files.filter(
    (file) =>
      layerOf(file) !== 'runtime' &&
      importsOf(file).some((s) => s === 'onnxruntime-node' || s.startsWith('onnxruntime-')),
  );
  assert.deepEqual(
    outside.map((f) => relative(ROOT, f)),
    [],
  );
});

test('the checker sees the imports it must judge', () => {
  // Guards the regular expression: a parser that found nothing would pass every rule above.
  const local = files.flatMap((file) =>
    importsOf(file)
      .map((s) => resolveLocal(file, s))
      .filter((t) => t !== undefined),
  );
  assert.ok(files.length > 50, `only ${files.length} source files found`);
  assert.ok(local.length > 3 * files.length, `only ${local.length} local imports found`);
  // Every layer with a non-empty row imports something: its row is not decoration.
  const importing = new Set(
    files.filter((f) => importsOf(f).some((s) => s.startsWith('.'))).map(layerOf),
  );
  for (const [layer, allowed] of rules) {
    if (allowed.size > 0) assert.ok(importing.has(layer), `no import found in ${layer}`);
  }
});
