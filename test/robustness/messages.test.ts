/**
 * @file Every message is one line and prints no terminal control: names and paths from files and
 * arguments are escaped (issue "Hostile and careless input", point 6).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { printable } from '../../src/cli/printable.js';
import { readModelFile, writeModelFile } from '../../src/onnx/files.js';
import { TEST_DIR, runZipit as zipit } from '../helpers.js';

const MLP_A = join(TEST_DIR, 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const dir = mkdtempSync(join(tmpdir(), 'zipit-messages-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A text that would forge a success line in red if printed raw. */
const FORGED = '\n\u001b[31mzipit: ok, merged fine\u001b[0m';

/** The one line of `text` (a trailing newline allowed), with no control character in it. */
function assertOneInertLine(text: string): void {
  const lines = text.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `expected one line, got ${JSON.stringify(text)}`);
  assert.ok(
    !/[\u0000-\u001f\u007f-\u009f]/.test(lines[0]!),
    `control characters in ${JSON.stringify(text)}`,
  );
}

test('printable escapes control characters, C1 codes and bidi overrides, and keeps the rest', () => {
  assert.equal(printable('a\nb\tc\r\u001b[0m\u0085\u202e é'), 'a\\nb\\tc\\r\\x1b[0m\\x85\\u202e é');
  assert.equal(printable('plain/path-1.onnx'), 'plain/path-1.onnx');
});

test('EXPECTED FAILURE - an op type holding a newline and ANSI codes prints as one escaped line', async () => {
  const model = readModelFile(MLP_A);
  assert.ok(model.ok);
  const [first, ...rest] = model.value.graph.nodes;
  const crafted = join(dir, 'crafted.onnx');
  const written = writeModelFile(crafted, {
    ...model.value,
    graph: {
      ...model.value.graph,
      nodes: [{ ...first!, opType: `Weird${FORGED}`, name: `node${FORGED}` }, ...rest],
    },
  });
  assert.ok(written.ok);
  const { code, stdout, stderr } = await zipit(['inspect', crafted]);
  assert.equal(code, 1);
  assert.equal(stdout, '');
  assertOneInertLine(stderr);
  assert.match(stderr, /Weird\\n\\x1b\[31mzipit: ok/);
});

test('EXPECTED FAILURE - a file name that forges a success line is escaped in the error', async () => {
  const { code, stderr } = await zipit(['inspect', join(dir, `missing${FORGED}.onnx`)]);
  assert.equal(code, 1);
  assertOneInertLine(stderr);
  assert.match(stderr, /^zipit: error: .*missing\\n\\x1b\[31mzipit: ok, merged fine/);
});

test('a valid model under such a name: inspect prints the name escaped', async () => {
  const path = join(dir, `m${FORGED}.onnx`);
  copyFileSync(MLP_A, path);
  const { code, stdout } = await zipit(['inspect', path]);
  assert.equal(code, 0);
  const first = stdout.split('\n')[0]!;
  assert.ok(first.includes('m\\n\\x1b[31mzipit: ok'), first);
  assert.ok(!stdout.includes('\u001b'));
});

test('EXPECTED FAILURE - a bad data spec is one line', async () => {
  const { code, stderr } = await zipit([
    'eval',
    MLP_A,
    '--mean',
    '0.286',
    '--std',
    '0.353',
    '--data',
    'bogus:thing',
  ]);
  assert.equal(code, 1);
  assertOneInertLine(stderr);
  assert.match(stderr, /got 'bogus:thing' \(unknown kind 'bogus'\)/);
});

test('EXPECTED FAILURE - a bad option value with control characters is one line', async () => {
  const { code, stderr } = await zipit([
    'merge',
    MLP_A,
    MLP_A,
    '--alpha',
    `x${FORGED}`,
    '--out',
    join(dir, 'o.onnx'),
  ]);
  assert.notEqual(code, 0);
  assertOneInertLine(stderr);
});
