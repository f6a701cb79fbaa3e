/** @file `runExperiment` end to end at toy scale: every method's row, resuming, and refusing a folder another run made. */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { modelScores } from '../../src/eval/evaluate.js';
import { scoreTasks } from '../../src/eval/metrics.js';
import {
  recipeDifferences,
  runExperiment,
  type ExperimentOptions,
  type ExperimentResults,
} from '../../src/experiment/experiment.js';
import { readModelFile, writeModelFile } from '../../src/onnx/files.js';
import { temporaryDirectory } from '../helpers.js';

const ALL = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const trainSplit = loadFashionMnist('train');
const testSplit = loadFashionMnist('test');
if (!trainSplit.ok || !testSplit.ok) throw new Error('embedded Fashion-MNIST missing');
const trainDraw = takeBalanced(trainSplit.value, ALL, 600, 1);
const testDraw = takeBalanced(testSplit.value, ALL, 400, 2);
if (!trainDraw.ok || !testDraw.ok) throw new Error('balanced draw failed');
const train = trainDraw.value;
const testData = testDraw.value;

function options(out: string, change: Partial<ExperimentOptions> = {}) {
  const notes: string[] = [];
  const value: ExperimentOptions = {
    arch: 'mlp',
    width: 1,
    pairs: 2,
    epochs: 1,
    train,
    test: testData,
    out,
    samples: 200,
    alphas: [0.3, 0.5],
    betas: [0.125],
    onNote: (line) => notes.push(line),
    ...change,
  };
  return { value, notes };
}

test('runExperiment trains the pairs, scores every method on the evaluated pair, and resumes without redoing anything', async () => {
  const out = temporaryDirectory('zipit-experiment-');
  const first = options(out);
  const result = await runExperiment(first.value);
  assert.ok(result.ok, !result.ok ? result.message : '');
  assert.equal(first.notes.filter((n) => n.startsWith('trained ')).length, 4);
  assert.deepEqual(
    result.value.chosen.grid.map((g) => [g.alpha, g.beta]),
    [
      [0.3, 0.125],
      [0.5, 0.125],
    ],
  );
  // Pair 0 is held out; pair 1 is the one evaluated.
  assert.equal(result.value.pairs.length, 1);
  const [pair] = result.value.pairs;
  const methods = pair!.rows.map((r) => r.method);
  assert.deepEqual(methods.slice(0, 5), ['Model A', 'Model B', 'W.Avg', 'Permute', 'ZipIt!']);
  assert.equal(methods.at(-1), 'Ensemble');
  assert.ok(
    methods.some((m) => m.startsWith('ZipIt!') && m.includes('/')),
    'a stop point row',
  );
  // Model A's row is the trained file scored on its own, independently of the experiment.
  const a = readModelFile(join(out, 'pair-1', 'a.onnx'));
  assert.ok(a.ok);
  assert.equal(a.value.metadata['zipit.trained_classes'], pair!.tasks[0]!.join(','));
  const scores = await modelScores(
    { model: a.value, label: 'a', mean: [0.286], std: [0.353] },
    testData,
  );
  assert.ok(scores.ok);
  const own = scoreTasks(scores.value, testData.labels, pair!.tasks);
  assert.equal(pair!.rows[0]!.joint, own.joint);
  assert.deepEqual(pair!.rows[0]!.tasks, own.tasks);
  // One pair: the summary is that pair, with zero spread.
  assert.deepEqual(
    result.value.summary.map((r) => [r.method, r.joint, r.std?.joint]),
    pair!.rows.map((r) => [r.method, r.joint, 0]),
  );
  const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ExperimentResults;
  assert.deepEqual(saved.summary, result.value.summary);

  const modelTime = statSync(join(out, 'pair-1', 'a.onnx')).mtimeMs;
  const again = options(out);
  const resumed = await runExperiment(again.value);
  assert.ok(resumed.ok, !resumed.ok ? resumed.message : '');
  assert.deepEqual(again.notes, [], 'nothing trained, chosen or evaluated again');
  assert.deepEqual(resumed.value.summary, result.value.summary);
  assert.equal(statSync(join(out, 'pair-1', 'a.onnx')).mtimeMs, modelTime);
});

test('EXPECTED FAILURE - runExperiment refuses a folder whose models or results another configuration made', async () => {
  const out = temporaryDirectory('zipit-experiment-');
  const made = await runExperiment(options(out).value);
  assert.ok(made.ok, !made.ok ? made.message : '');
  const before = readFileSync(join(out, 'pair-0', 'a.onnx'));

  const otherEpochs = await runExperiment(options(out, { epochs: 2 }).value);
  assert.ok(!otherEpochs.ok);
  assert.equal(otherEpochs.reason, 'bad-argument');
  assert.match(
    otherEpochs.message,
    /pair-0.a\.onnx was trained with epochs 1, but this run asks for epochs 2/,
  );
  assert.deepEqual(readFileSync(join(out, 'pair-0', 'a.onnx')), before, 'the model is kept');

  const otherSamples = await runExperiment(options(out, { samples: 300 }).value);
  assert.ok(!otherSamples.ok);
  assert.match(
    otherSamples.message,
    /results\.json holds a run of mlp x1, 1 epochs, 200 merge images/,
  );
});

test('EXPECTED FAILURE - runExperiment refuses a model trained with another learning rate, and reuses one from before the key existed', async () => {
  const out = temporaryDirectory('zipit-experiment-');
  const made = await runExperiment(options(out).value);
  assert.ok(made.ok, !made.ok ? made.message : '');
  const path = join(out, 'pair-0', 'a.onnx');
  const model = readModelFile(path);
  assert.ok(model.ok);
  assert.equal(model.value.metadata['zipit.lr'], '0.1');
  assert.equal(model.value.metadata['zipit.weight_decay'], '0.0005');

  const rewrite = (metadata: Record<string, string>) =>
    assert.ok(writeModelFile(path, { ...model.value, metadata }).ok);
  rewrite({ ...model.value.metadata, 'zipit.lr': '0.05' });
  const otherRate = await runExperiment(options(out).value);
  assert.ok(!otherRate.ok);
  assert.match(otherRate.message, /trained with lr 0\.05, but this run asks for lr 0\.1/);

  // Models written before zipit.lr and zipit.weight_decay were recorded had the defaults.
  const older = { ...model.value.metadata };
  delete older['zipit.lr'];
  delete older['zipit.weight_decay'];
  rewrite(older);
  const again = options(out);
  const resumed = await runExperiment(again.value);
  assert.ok(resumed.ok, !resumed.ok ? resumed.message : '');
  assert.deepEqual(again.notes, [], 'the older model is reused, nothing retrained');
});

test('recipeDifferences: a ResNet-20 model from before zipit.lr was recorded was trained at 0.1, not the default 0.2', () => {
  // models/resnet20-pair's old metadata, as written before the lr and weight-decay keys.
  const older = {
    'zipit.arch': 'resnet20',
    'zipit.width': '1',
    'zipit.seed': '11',
    'zipit.trained_classes': '0,2,4,6,8',
    'zipit.epochs': '6',
    'zipit.schedule': 'linear',
    'zipit.decay': 'all',
  };
  const run = { arch: 'resnet20' as const, width: 1, epochs: 6 };
  assert.deepEqual(recipeDifferences(older, run, [0, 2, 4, 6, 8], 11), {
    was: 'lr 0.1',
    now: 'lr 0.2',
  });
  const current = { ...older, 'zipit.lr': '0.2', 'zipit.weight_decay': '0.0005' };
  assert.equal(recipeDifferences(current, run, [0, 2, 4, 6, 8], 11), undefined);
  assert.deepEqual(recipeDifferences(current, run, [0, 2, 4, 6, 8], 12), {
    was: 'seed 11',
    now: 'seed 12',
  });
  assert.deepEqual(recipeDifferences(older, { ...run, arch: 'mlp' }, [0, 2, 4, 6, 8], 11), {
    was: 'arch resnet20',
    now: 'arch mlp',
  });
});
