/** @file `zipit merge --alpha auto --beta auto` through the real CLI: the printed choice, the JSON, the recorded metadata, and its refusals. */
import assert from 'node:assert/strict';

import { join } from 'node:path';
import { test } from 'node:test';
import { readModelFile } from '../../src/onnx/files.js';
import { runZipit as zipit, temporaryDirectory } from '../helpers.js';

const MLP_A = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const MLP_B = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'b.onnx');
const TASKS = ['--tasks', '0,1,6,8,9/2,3,4,5,7'];
const TORCH_PREPROCESSING = ['--mean', '0.2860', '--std', '0.3530'];
const QUICK = ['--samples', '200', '--batch', '50', '--threads', '1'];
const dir = temporaryDirectory('zipit-tune-cli-');

interface TunedJson {
  parameters: { alpha: number; beta: number };
  tuning: {
    rule: 'joint';
    chosen: { alpha: number; beta: number; score: number };
    points: { alpha: number; beta: number; agreement: { joint: number } }[];
    fitted: number;
    scored: number;
  };
}

test('zipit merge --alpha auto --beta <list> --json: the choice is the best reported point, merged and recorded', async () => {
  const out = join(dir, 'tuned.onnx');
  const run = await zipit([
    'merge',
    MLP_A,
    MLP_B,
    ...TASKS,
    ...TORCH_PREPROCESSING,
    ...QUICK,
    '--alpha',
    'auto',
    '--beta',
    '0.125,1',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const printed = JSON.parse(run.stdout) as TunedJson;
  const { tuning } = printed;
  // 'auto' is the reference's alpha grid; the beta list is taken as given.
  assert.deepEqual(
    tuning.points.map((p) => `${p.alpha}/${p.beta}`),
    ['0.3/0.125', '0.3/1', '0.5/0.125', '0.5/1', '0.7/0.125', '0.7/1', '1/0.125', '1/1'],
  );
  assert.deepEqual([tuning.fitted, tuning.scored], [160, 40]);
  const best = Math.max(...tuning.points.map((p) => p.agreement.joint));
  const first = tuning.points.find((p) => p.agreement.joint === best)!;
  assert.deepEqual(tuning.chosen, { alpha: first.alpha, beta: first.beta, score: best });
  assert.deepEqual(printed.parameters, { alpha: first.alpha, beta: first.beta });
  const model = readModelFile(out);
  assert.ok(model.ok);
  assert.equal(model.value.metadata['zipit.alpha'], String(first.alpha));
  assert.equal(model.value.metadata['zipit.beta'], String(first.beta));
  assert.equal(
    (JSON.parse(model.value.metadata['zipit.tuning']!) as { scores: number[] }).scores.length,
    8,
  );
});

test('zipit merge --beta auto prints the grid with the choice marked, then the merge line', async () => {
  const run = await zipit([
    'merge',
    MLP_A,
    MLP_B,
    ...TASKS,
    ...TORCH_PREPROCESSING,
    ...QUICK,
    '--alpha',
    '0.5',
    '--beta',
    'auto',
    '--out',
    join(dir, 'tuned-beta.onnx'),
  ]);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  assert.match(
    lines[0]!,
    /^label-free alpha\/beta: joint agreement .* on 40 held-out merge images/,
  );
  assert.match(lines[1]!, /^alpha \\ beta\s+0\.125\s+0\.25\s+0\.5\s+1$/);
  assert.match(lines[2]!, /^0\.5(\s+\*?[\d.]+){4}$/);
  assert.equal(lines[2]!.split('*').length, 2, 'one point marked');
  const chosen = /^chosen: alpha 0\.5, beta ([\d.]+) \(/.exec(lines[3]!);
  assert.ok(chosen, lines[3]);
  assert.match(
    lines[4]!,
    new RegExp(`^merged 2 models with zipit \\(alpha 0.5, beta ${chosen[1]}\\)`),
  );
});

test('EXPECTED FAILURE - zipit merge: auto with another method, a bad value, no classes per model', async () => {
  const out = join(dir, 'never.onnx');
  const base = ['merge', MLP_A, MLP_B, ...TORCH_PREPROCESSING, ...QUICK, '--out', out];
  const cases: [string[], string][] = [
    [
      [...base, ...TASKS, '--method', 'permute', '--alpha', 'auto'],
      "--alpha auto chooses ZipIt!'s alpha, but --method permute reads neither alpha nor beta; use --method zipit, or drop --alpha.",
    ],
    [
      [...base, ...TASKS, '--beta', 'sometimes'],
      "Expected --beta to be a number in [0, 1], 'auto', or a comma-separated list of numbers, got 'sometimes'.",
    ],
    [[...base, ...TASKS, '--alpha', '0.5,2'], 'Expected --alpha to be in [0, 1], got 2'],
    [
      [...base, ...TASKS, '--alpha', 'auto', '--tune-holdout', '1'],
      'Expected --tune-holdout to be in [0, 1), got 1.',
    ],
    [
      [...base, '--alpha', 'auto'],
      "Choosing alpha/beta scores the merge against each model's own classes: expected one class set per model (2), got 1; give --tasks.",
    ],
  ];
  for (const [args, message] of cases) {
    const run = await zipit(args);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stderr, `zipit: error: ${message}\n`);
  }
});
