/** @file Golden tests of the real CLI on the PyTorch fixtures, and its answers to bad eval input. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spread } from '../../src/cli/demo.js';
import { RECOMMENDED_MERGE } from '../../src/merge/recommended.js';
import { runZipit as zipit, temporaryDirectory, TEST_DIR } from '../helpers.js';

const MLP_A = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const MLP_B = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'b.onnx');
const TASKS = ['--tasks', '0,1,6,8,9/2,3,4,5,7'];
const TORCH_PREPROCESSING = ['--mean', '0.2860', '--std', '0.3530'];

test('zipit inspect prints the spaces and stop points (golden)', async () => {
  const { code, stdout } = await zipit(['inspect', MLP_A]);
  assert.equal(code, 0);
  assert.equal(stdout, readFileSync(join(TEST_DIR, 'cli', 'golden', 'inspect-mlp.txt'), 'utf8'));
});

test("zipit eval --json prints one JSON object with PyTorch's accuracies", async () => {
  const { code, stdout } = await zipit(['eval', MLP_A, ...TASKS, ...TORCH_PREPROCESSING, '--json']);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), {
    joint: 0.4633,
    tasks: [0.9266, 0.3486],
    avg: 0.6376,
    n: 10000,
  });
});

test("zipit eval without --tasks uses the models' stored trained classes: the ensemble scores as the reference scores it", async () => {
  // fixtures/official-eval: the reference's scoring function gave joint 59.76, task A 87.2,
  // task B 97.4 for this pair as an ensemble.
  const pair = join('test', 'fixtures', 'official-eval', 'zipit-trained-pair');
  const { code, stdout, stderr } = await zipit([
    'eval',
    join(pair, 'a.onnx'),
    join(pair, 'b.onnx'),
    '--json',
  ]);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout) as { joint: number; tasks: number[] };
  assert.equal(result.tasks.length, 2);
  assert.ok(Math.abs(result.joint - 0.5976) <= 1e-4, `joint ${result.joint}`);
  assert.ok(Math.abs(result.tasks[0]! - 0.872) <= 1e-4, `task A ${result.tasks[0]}`);
  assert.ok(Math.abs(result.tasks[1]! - 0.974) <= 1e-4, `task B ${result.tasks[1]}`);
});

test('EXPECTED FAILURE - an ensemble of models that store no classes needs --tasks', async () => {
  const { code, stderr } = await zipit(['eval', MLP_A, MLP_B, ...TORCH_PREPROCESSING]);
  assert.equal(code, 1);
  assert.match(
    stderr,
    /^zipit: error: The ensemble of 2 models has 2 outputs to score but 1 task; give --tasks one class set per model/,
  );
});

test('zipit merge --json reports every phase, writes a model that zipit eval scores', async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const out = join(dir, 'merged.onnx');
  const merged = await zipit([
    'merge',
    MLP_A,
    MLP_B,
    ...TASKS,
    ...TORCH_PREPROCESSING,
    '--samples',
    '500',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(merged.code, 0, merged.stderr);
  const report = JSON.parse(merged.stdout) as Record<string, unknown> & {
    seconds: Record<string, number>;
    spaces: { crossModelMerges: number; sameModelMerges: number }[];
  };
  assert.equal(report.method, 'zipit');
  // The CLI's defaults are the recommended procedure's, not the paper's.
  assert.deepEqual(report.parameters, RECOMMENDED_MERGE.match);
  assert.equal(report.spacesMerged, 2);
  assert.deepEqual(Object.keys(report.seconds), [
    'load',
    'sourceReset',
    'statistics',
    'matching',
    'apply',
    'repair',
    'logits',
    'write',
    'total',
  ]);
  // 256 merged features from 512: each join removes one group.
  for (const space of report.spaces)
    assert.equal(space.crossModelMerges + space.sameModelMerges, 256);
  assert.ok(existsSync(out));
  const scored = await zipit(['eval', out, ...TASKS, ...TORCH_PREPROCESSING, '--json']);
  assert.equal(scored.code, 0, scored.stderr);
  const accuracy = JSON.parse(scored.stdout) as { avg: number };
  assert.ok(accuracy.avg > 0.6, `merged avg ${accuracy.avg}`);
});

test('zipit merge --report writes the merge, its scores beside the sources and ensemble, and the HTML report', async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const out = join(dir, 'merged.onnx');
  const page = join(dir, 'report.html');
  const merged = await zipit([
    'merge',
    MLP_A,
    MLP_B,
    ...TASKS,
    ...TORCH_PREPROCESSING,
    '--samples',
    '500',
    '--out',
    out,
    '--report',
    page,
    '--json',
  ]);
  assert.equal(merged.code, 0, merged.stderr);
  const printed = JSON.parse(merged.stdout) as {
    rows: { method: string; joint: number; tasks: number[]; avg: number }[];
    spaces: unknown[];
    seconds: Record<string, number>;
  };
  assert.deepEqual(
    printed.rows.map((r) => r.method),
    ['Model A', 'Model B', 'ZipIt!', 'Ensemble'],
  );
  // The merge's own phases are reported apart from the evaluation that surrounds them.
  const { statistics, matching, apply, repair, mergeAndEvaluate } = printed.seconds;
  assert.ok(
    mergeAndEvaluate! >= statistics! + matching! + apply! + repair!,
    JSON.stringify(printed.seconds),
  );
  // The sources' rows are PyTorch's accuracies (manifest), and the ZipIt! row scores the
  // very model written to --out.
  assert.deepEqual(printed.rows[0]!.tasks, [0.9266, 0.3486]);
  const scored = await zipit(['eval', out, ...TASKS, ...TORCH_PREPROCESSING, '--json']);
  assert.equal(scored.code, 0, scored.stderr);
  const accuracy = JSON.parse(scored.stdout) as { joint: number; tasks: number[] };
  assert.equal(printed.rows[2]!.joint, accuracy.joint);
  assert.deepEqual(printed.rows[2]!.tasks, accuracy.tasks);
  // The page embeds exactly the printed rows (the browser test checks what it draws from them).
  const html = readFileSync(page, 'utf8');
  const embedded = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(
    html,
  );
  assert.ok(embedded, 'report-data script');
  const data = JSON.parse(embedded[1]!.replace(/\\u003c/g, '<')) as {
    rows: unknown[];
    spaces: unknown[];
  };
  assert.deepEqual(data.rows, printed.rows);
  assert.deepEqual(data.spaces, printed.spaces);
});

test('EXPECTED FAILURE - zipit merge --report refuses to overwrite --out or an input', async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const out = join(dir, 'merged.onnx');
  for (const report of [out, MLP_A]) {
    const result = await zipit([
      'merge',
      MLP_A,
      MLP_B,
      ...TASKS,
      ...TORCH_PREPROCESSING,
      '--out',
      out,
      '--report',
      report,
    ]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr.trim(),
      `zipit: error: --report ${report} is one of the models or --out; choose another file.`,
    );
    assert.ok(!existsSync(out));
  }
});

test('EXPECTED FAILURE - zipit eval answers bad input with one line and exit 1', async () => {
  const cases: [string[], string][] = [
    [
      ['eval', MLP_A, ...TASKS],
      `${MLP_A} has no stored preprocessing; pass --mean and --std (e.g. --mean 0.2860 --std 0.3530 for Fashion-MNIST).`,
    ],
    [
      ['eval', MLP_A, ...TORCH_PREPROCESSING, '--tasks', '0,1,12/2'],
      "Expected classes 0..9 in task 1 ('0,1,12') of '0,1,12/2', got 12",
    ],
    [
      [
        'eval',
        MLP_A,
        ...TORCH_PREPROCESSING,
        '--data',
        'idx:/nonexistent/images.gz,/nonexistent/labels.gz',
      ],
      '',
    ],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await zipit(args);
    assert.equal(code, 1, stderr);
    const lines = stderr.split('\n').filter((l) => l.startsWith('zipit: error:'));
    assert.equal(lines.length, 1, stderr);
    if (message !== '') assert.equal(lines[0], `zipit: error: ${message}`);
    else
      assert.equal(
        lines[0],
        'zipit: error: Expected the IDX images file at /nonexistent/images.gz, but there is no such file',
      );
    assert.doesNotMatch(stderr, /\n\s+at /);
  }
});

test('EXPECTED FAILURE - an unknown command or option is a usage error (exit 2)', async () => {
  const { code, stderr } = await zipit(['merge', MLP_A, '--out', 'x.onnx', '--bogus']);
  assert.equal(code, 2);
  assert.match(stderr, /unknown option '--bogus'/);
});

test("the demo's stop points: four spread from the first to the last", () => {
  const ids = Array.from({ length: 10 }, (_, i) => `p${i}`);
  assert.deepEqual(spread(ids, 4), ['p0', 'p3', 'p6', 'p9']);
  assert.deepEqual(spread(ids.slice(0, 3), 4), ['p0', 'p1', 'p2']);
  assert.deepEqual(spread(ids.slice(0, 5), 4), ['p0', 'p1', 'p3', 'p4']);
});

test("zipit merge --reset-sources resets a BatchNorm pair's sources first, and says so", async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const pair = join('test', 'fixtures', 'official-eval', 'zipit-trained-pair');
  const run = (flag: string) =>
    zipit([
      'merge',
      join(pair, 'a.onnx'),
      join(pair, 'b.onnx'),
      '--samples',
      '200',
      '--out',
      join(dir, `${flag}.onnx`),
      flag,
      '--json',
    ]);
  const reset = await run('--reset-sources');
  assert.equal(reset.code, 0, reset.stderr);
  const report = JSON.parse(reset.stdout) as {
    sourcesReset: boolean;
    seconds: { sourceReset: number };
  };
  assert.equal(report.sourcesReset, true);
  assert.ok(report.seconds.sourceReset > 0);
  const kept = await run('--no-reset-sources');
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal((JSON.parse(kept.stdout) as { sourcesReset: boolean }).sourcesReset, false);
  // Different statistics, different matchings: the two merged files differ.
  assert.notDeepEqual(
    readFileSync(join(dir, '--reset-sources.onnx')),
    readFileSync(join(dir, '--no-reset-sources.onnx')),
  );
});

test('zipit merge --method cca and --weight-similarity: a folded pair merges and says so; bad uses get one line and exit 1', async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const out = join(dir, 'm.onnx');
  const merge = (...flags: string[]) =>
    zipit([
      'merge',
      MLP_A,
      MLP_B,
      ...TASKS,
      ...TORCH_PREPROCESSING,
      '--samples',
      '300',
      '--out',
      out,
      ...flags,
    ]);
  const cca = await merge('--method', 'cca', '--json');
  assert.equal(cca.code, 0, cca.stderr);
  assert.equal((JSON.parse(cca.stdout) as { method: string }).method, 'cca');
  assert.ok(existsSync(out));
  const dual = await merge('--weight-similarity', '0.25', '--json');
  assert.equal(dual.code, 0, dual.stderr);
  const report = JSON.parse(dual.stdout) as { parameters: { weightSimilarity?: number } };
  assert.equal(report.parameters.weightSimilarity, 0.25);
  const unused = await merge('--method', 'cca', '--weight-similarity', '0.5');
  assert.equal(unused.code, 1);
  assert.match(
    unused.stderr,
    /^zipit: error: --weight-similarity mixes weights into the correlation/,
  );
  const blank = await merge('--weight-similarity', ' ');
  assert.equal(blank.code, 1);
  const bad = await merge('--weight-similarity', 'lots');
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stderr.trim(),
    'zipit: error: Expected --weight-similarity to be in [0, 1], got lots',
  );
  const pair = join('test', 'fixtures', 'official-eval', 'zipit-trained-pair');
  const bn = await zipit([
    'merge',
    join(pair, 'a.onnx'),
    join(pair, 'b.onnx'),
    '--method',
    'cca',
    '--out',
    join(dir, 'bn.onnx'),
  ]);
  assert.equal(bn.code, 1);
  assert.match(bn.stderr, /^zipit: error: CCA merge mixes channels densely.*BatchNorm folded/);
  assert.ok(!existsSync(join(dir, 'bn.onnx')));
});
