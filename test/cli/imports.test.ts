/**
 * @file The shell's import rules: src/cli reaches the library only through its public API
 * (src/index.ts) and the few shell-level modules, and its own files import each other without
 * a loop.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TEST_DIR } from '../helpers.js';

const CLI_DIR = join(TEST_DIR, '..', 'src', 'cli');

/** What src/cli may import from outside itself. */
const ALLOWED_OUTSIDE = [
  /^\.\.\/index\.js$/,
  /^\.\.\/errors\.js$/,
  /^\.\.\/progress\.js$/,
  /^\.\.\/files\/[\w-]+\.js$/,
  /^\.\.\/report\/[\w-]+\.js$/,
];

/** Each file of src/cli with the module specifiers it imports. */
function cliImports(): Map<string, string[]> {
  const files = readdirSync(CLI_DIR).filter((name) => name.endsWith('.ts'));
  return new Map(
    files.map((name) => {
      const text = readFileSync(join(CLI_DIR, name), 'utf8');
      return [
        name,
        [...text.matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gms)].map((m) => m[1]!),
      ];
    }),
  );
}

test('src/cli imports the library only through src/index.ts (and errors, progress, files/, report/)', () => {
  const outside = [...cliImports()].flatMap(([name, specifiers]) =>
    specifiers
      .filter((s) => s.startsWith('../') && !ALLOWED_OUTSIDE.some((rule) => rule.test(s)))
      .map((s) => `${name} imports ${s}`),
  );
  assert.deepEqual(outside, []);
});

test('the files of src/cli import each other without a loop', () => {
  const imports = cliImports();
  const local = (name: string): string[] =>
    (imports.get(name) ?? [])
      .filter((s) => s.startsWith('./'))
      .map((s) => s.slice(2).replace(/\.js$/, '.ts'));
  const done = new Set<string>();
  const path: string[] = [];
  const loops: string[] = [];
  const visit = (name: string): void => {
    if (path.includes(name)) {
      loops.push([...path.slice(path.indexOf(name)), name].join(' -> '));
      return;
    }
    if (done.has(name)) return;
    path.push(name);
    for (const next of local(name)) visit(next);
    path.pop();
    done.add(name);
  };
  for (const name of imports.keys()) visit(name);
  assert.deepEqual(loops, []);
  // The check sees the table's imports, so it would see a loop through it.
  assert.ok(local('commands.ts').includes('merge.ts'));
});
