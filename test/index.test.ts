/**
 * @file A library user's tests: everything through `src/index.ts` alone. Two models trained by
 * `zipit train` (ResNet-20, classes 0,2,4,6,8 and 1,3,5,7,9) are merged with the options their
 * own metadata holds and the defaults the API exports; a model merged with a channel-permuted
 * copy of itself must give its own outputs back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as api from '../src/index.js';
import {
  analyzeGraph,
  analyzeSpaces,
  DEFAULT_MATCH_OPTIONS,
  evaluateModels,
  findStopPoints,
  loadFashionMnist,
  mergeModels,
  modelScores,
  permuteChannels,
  readModelFile,
  storedPreprocessing,
  storedTasks,
  takeBalanced,
  type Model,
  type Result,
} from '../src/index.js';
import { TEST_DIR } from './helpers.js';

const PAIR = join(TEST_DIR, 'fixtures', 'official-eval', 'zipit-trained-pair');

/** The value of a Result, or a thrown error naming what failed. */
function value<T>(result: Result<T>, what: string): T {
  if (!result.ok) throw new Error(`${what}: ${result.message}`);
  return result.value;
}

const a = value(readModelFile(join(PAIR, 'a.onnx')), 'reading a.onnx');
const b = value(readModelFile(join(PAIR, 'b.onnx')), 'reading b.onnx');
const preprocessing = storedPreprocessing(a);
const tasks = storedTasks([a, b]);
const train = value(loadFashionMnist('train'), 'loading the training split');
const testSplit = value(loadFashionMnist('test'), 'loading the test split');

test('the models carry what a merge needs: their preprocessing and the classes each was trained on', () => {
  assert.ok(preprocessing !== undefined, 'a.onnx stores its preprocessing');
  assert.deepEqual(storedPreprocessing(b), preprocessing);
  assert.deepEqual(tasks, [
    [0, 2, 4, 6, 8],
    [1, 3, 5, 7, 9],
  ]);
});

test('zipping the pair halfway with the stored options and the default alpha and beta beats either model on the joint task', async () => {
  assert.ok(preprocessing !== undefined && tasks !== undefined);
  const { mean, std } = preprocessing;
  const probe = value(takeBalanced(testSplit, tasks.flat(), 1000, 0), 'drawing test images');
  const score = async (model: Model, label: string) =>
    value(await evaluateModels([{ model, label, mean, std }], probe, tasks), `scoring ${label}`);
  const mergeData = value(takeBalanced(train, tasks.flat(), 500, 0), 'drawing the merge data');
  // Partial zipping, the paper's lever: the first half of the layers zipped, a head per model.
  const merged = value(
    await mergeModels([a, b], ['a', 'b'], mergeData, preprocessing, {
      method: 'zipit',
      stopAt: '0.5',
    }),
    'merging',
  );
  // alpha and beta not given: the reference's defaults, which the API exports.
  assert.deepEqual(merged.report.parameters, {
    alpha: DEFAULT_MATCH_OPTIONS.alpha,
    beta: DEFAULT_MATCH_OPTIONS.beta,
  });
  assert.equal(merged.report.numModels, 2);
  assert.ok(merged.report.stopAt !== undefined && merged.report.stopAt.zipped > 0);
  // The merge keeps the sources' preprocessing: a later user reads the same options back.
  assert.deepEqual(storedPreprocessing(merged.model)?.mean, mean);
  assert.deepEqual(storedPreprocessing(merged.model)?.std, std);

  const zipped = await score(merged.model, 'merged');
  const sources = [await score(a, 'a'), await score(b, 'b')];
  assert.equal(zipped.n, 1000);
  // Each source knows only its own five classes (chance, 1/5, on the other's); the merge knows
  // both well enough to beat each on the ten-class joint task.
  for (const [k, taskAccuracy] of zipped.tasks.entries()) {
    assert.ok(taskAccuracy > 0.4, `task ${k}: ${taskAccuracy} is near chance (0.2)`);
  }
  for (const [k, source] of sources.entries()) {
    assert.ok(zipped.joint > source.joint, `joint ${zipped.joint} <= model ${k}'s ${source.joint}`);
  }
});

test('a model merged with a channel-permuted copy of itself computes its own function again', async () => {
  assert.ok(preprocessing !== undefined);
  const permuted = value(permuteChannels(a, 7), 'permuting a.onnx').model;
  const mergeData = value(takeBalanced(train, [0, 2, 4, 6, 8], 300, 1), 'drawing the merge data');
  const logits = async (model: Model): Promise<Float32Array> => {
    const scores = value(
      await modelScores({ model, label: 'probe', ...preprocessing }, mergeData),
      'scoring',
    );
    assert.equal(scores.length, 1);
    return scores[0]!.logits;
  };
  const original = await logits(a);
  const difference = (x: Float32Array, y: Float32Array): number =>
    x.reduce((max, v, i) => Math.max(max, Math.abs(v - y[i]!)), 0);
  // The copy computes the same function with different weights, so the test can fail.
  assert.ok(difference(original, await logits(permuted)) < 1e-4);
  const weight = [...a.graph.initializers.keys()].find((name) => /weight/.test(name))!;
  assert.ok(
    difference(
      a.graph.initializers.get(weight)!.data as Float32Array,
      permuted.graph.initializers.get(weight)!.data as Float32Array,
    ) > 1e-3,
  );

  // beta 0: no same-model merges; without the statistics correction the merge is exactly A.
  const merged = value(
    await mergeModels([a, permuted], ['a', 'permuted'], mergeData, preprocessing, {
      method: 'zipit',
      match: { beta: 0 },
      repair: false,
    }),
    'merging with the permuted copy',
  );
  const gap = difference(original, await logits(merged.model));
  assert.ok(gap < 1e-3, `the merged logits differ from the original's by ${gap}`);
});

test("a model's feature spaces and stop points, for --stop-at", () => {
  const graph = value(analyzeGraph(a), 'analysing the graph');
  const spaces = value(analyzeSpaces(graph), 'finding the feature spaces');
  const widths = new Set(spaces.spaces.filter((s) => s.kind === 'residual').map((s) => s.width));
  // ResNet-20 x1: three stages of residual streams, 16, 32 and 64 channels wide.
  assert.deepEqual(
    [...widths].sort((x, y) => x - y),
    [16, 32, 64],
  );
  const points = findStopPoints(graph, spaces);
  assert.ok(points.length > 1);
  assert.ok(points.every((p, i) => i === 0 || p.zipped > points[i - 1]!.zipped));
});

test('the public API leaves internals out: no graph builder, no onnxruntime session', () => {
  for (const internal of ['GraphBuilder', 'createSession', 'withCapturedOutputs']) {
    assert.ok(!(internal in api), `${internal} is exported`);
  }
});
