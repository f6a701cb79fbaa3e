/**
 * @file Class-aware heads against exact truth: B shares A's trunk (permuted, so the matching
 * must find it) but has its own classifier. Merging with Permute, correction off, recovers A's
 * trunk exactly, so the merged logits must be A's on A's classes and B's on B's classes
 * (class-aware), or the mean of A's and B's (the paper's averaged head).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { classAwareHead } from '../../src/merge/class-head.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import type { Model } from '../../src/onnx/model.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import {
  maxAbsDiff,
  runModel,
  runZipit,
  temporaryDirectory,
  TEST_DIR,
  zooModel,
} from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300, 1);
if (!mergeData.ok) throw new Error(mergeData.message);
const merge = mergeData.value;
const normalization = { mean: [0.286], std: [0.353] };
/**
 * Probe images from the merge data: a channel that never fires there has no correlation and an
 * arbitrary match, harmless on the merge data only.
 */
function probe(): Float32Array {
  const input = new Float32Array(8 * 784);
  const images = merge.images;
  for (let i = 0; i < input.length; i++) input[i] = (images[i]! / 255 - 0.286) / 0.353;
  return input;
}

const TASKS = [
  [0, 2, 4, 6, 8],
  [1, 3, 5, 7, 9],
];

/** `model` with the classifier (fc3) of `head`: same trunk, another head. */
function withHead(model: Model, head: Model): Model {
  const initializers = new Map(model.graph.initializers);
  for (const name of ['fc3.weight', 'fc3.bias'])
    initializers.set(name, head.graph.initializers.get(name) as Tensor);
  return { ...model, graph: { ...model.graph, initializers } };
}

async function mergedOutputs(head: 'class-aware' | 'average') {
  const a = zooModel('mlp', 1);
  // B: A's trunk under another head (from another initialisation), then every hidden space
  // permuted; the head's outputs are classes and stay in place.
  const b = permuteChannels(withHead(a, zooModel('mlp', 2)), 7);
  assert.ok(b.ok);
  const merged = await mergeModels([a, b.value.model], ['A', 'B'], merge, normalization, {
    method: 'permute',
    repair: false,
    trainedClasses: TASKS,
    head,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  const input = probe();
  const outA = await runModel(a, input);
  const outB = await runModel(b.value.model, input);
  const outM = await runModel(merged.value.model, input);
  return { a: outA.logits!, b: outB.logits!, merged: outM.logits!, result: merged.value };
}

test('class-aware head: class j comes from the model trained on j, exactly', async () => {
  const { a, b, merged, result } = await mergedOutputs('class-aware');
  assert.equal(result.report.head, 'class-aware');
  assert.equal(result.model.metadata['zipit.head'], 'class-aware');
  assert.equal(result.model.metadata['zipit.trained_classes'], '0,2,4,6,8/1,3,5,7,9');
  const expected = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) expected[i] = (i % 10) % 2 === 0 ? a[i]! : b[i]!;
  // The heads really differ, so the test can tell the rules apart.
  assert.ok(maxAbsDiff(a, b) > 1e-2);
  assert.ok(maxAbsDiff(merged, expected) < 1e-4, `differs by ${maxAbsDiff(merged, expected)}`);
});

test("averaged head (the paper's): every class is the mean of both models' rows", async () => {
  const { a, b, merged, result } = await mergedOutputs('average');
  assert.equal(result.report.head, 'average');
  const expected = a.map((x, i) => (x + b[i]!) / 2);
  assert.ok(maxAbsDiff(merged, expected) < 1e-4, `differs by ${maxAbsDiff(merged, expected)}`);
});

test('class-aware head: nothing to do when every model holds every class, or classes are unknown', () => {
  const model = zooModel('mlp', 1);
  const graph = analyzeGraph(model);
  assert.ok(graph.ok);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok);
  const all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  assert.equal(classAwareHead(model, spaces.value, [all, all]), undefined);
  // A class nobody holds keeps the mean of every model; one held by one model takes its row only.
  const head = classAwareHead(model, spaces.value, [[0], [1]]);
  assert.ok(head);
  const rowsA = head.transform.rows[0]!;
  const weightOf = (map: typeof rowsA, out: number) => {
    const e = [...map.out].indexOf(out);
    return e < 0 ? 0 : map.weight[e]!;
  };
  assert.equal(weightOf(rowsA, 0), 1);
  assert.equal(weightOf(rowsA, 1), 0);
  assert.equal(weightOf(rowsA, 5), 0.5);
});

test('a merge refuses a trained-class list of the wrong length', async () => {
  const a = zooModel('mlp', 1);
  const merged = await mergeModels([a, zooModel('mlp', 2)], ['A', 'B'], merge, normalization, {
    method: 'wavg',
    trainedClasses: [[0, 1]],
  });
  assert.equal(merged.ok, false);
  assert.match(merged.ok ? '' : merged.message, /one set of trained classes per model/);
});

test('EXPECTED FAILURE - zipit merge --head class-aware without trained classes: one line, exit 1, no output', async () => {
  const out = join(temporaryDirectory('zipit-head-'), 'm.onnx');
  const dir = join(TEST_DIR, 'fixtures', 'torch-fmnist', 'mlp');
  const run = await runZipit([
    'merge',
    join(dir, 'a.onnx'),
    join(dir, 'b.onnx'),
    '--head',
    'class-aware',
    '--samples',
    '200',
    '--mean',
    '0.286',
    '--std',
    '0.353',
    '--out',
    out,
  ]);
  assert.equal(run.code, 1);
  assert.equal(run.stderr.trim().split('\n').length, 1);
  assert.match(run.stderr, /class-aware head needs the classes each model was trained on/);
  assert.equal(existsSync(out), false);
});
