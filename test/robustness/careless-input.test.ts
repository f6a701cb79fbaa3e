/**
 * @file Careless options and mismatched models (issue 15, points 2 and 9): `--threads` bounded
 * by the machine, models with different outputs, ir_version 0, unsupported ops after a stop
 * point, stored preprocessing of a merge, and messages that say what is wrong.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseThreadsOption } from '../../src/cli/common.js';
import { TEST_DIR } from '../helpers.js';

const ROOT = join(TEST_DIR, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const MLP_A = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const MLP_B = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'b.onnx');

function zipit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('EXPECTED FAILURE - --threads above the cores is refused, naming the maximum', () => {
  const parse = parseThreadsOption(4);
  assert.equal(parse('4'), 4);
  assert.throws(() => parse('1000'), {
    message:
      "Expected --threads to be an integer from 1 to 4 (the cores this machine has), got '1000'.",
  });
  assert.throws(() => parse('0'), /from 1 to 4/);
});

test('EXPECTED FAILURE - zipit merge and train refuse --threads above the cores before any work', async () => {
  const tooMany = String(availableParallelism() + 1);
  const max = availableParallelism();
  for (const args of [
    ['merge', MLP_A, MLP_B, '--out', join('nonexistent', 'x.onnx'), '--threads', tooMany],
    ['train', '--arch', 'mlp', '--out', join('nonexistent', 'x.onnx'), '--threads', tooMany],
  ]) {
    const { code, stderr } = await zipit(args);
    assert.equal(code, 2, stderr);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `Expected --threads to be an integer from 1 to ${max} \\(the cores this machine has\\), got '${tooMany}'`,
      ),
    );
  }
});
