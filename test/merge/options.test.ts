/** @file Merge options: what a caller may leave out. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { DEFAULT_MATCH_OPTIONS } from '../../src/match/index.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { encodeModel } from '../../src/onnx/model.js';
import { zooModel } from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 100, 6);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };

test("weight averaging needs no alpha or beta: without them the merge is the same, and reports the reference's defaults", async () => {
  const models = [zooModel('mlp', 1), zooModel('mlp', 2)];
  const bare = await mergeModels(models, ['a', 'b'], mergeData.value, normalization, {
    method: 'wavg',
  });
  const explicit = await mergeModels(models, ['a', 'b'], mergeData.value, normalization, {
    method: 'wavg',
    match: { alpha: DEFAULT_MATCH_OPTIONS.alpha, beta: DEFAULT_MATCH_OPTIONS.beta },
  });
  assert.ok(bare.ok && explicit.ok);
  assert.deepEqual(encodeModel(bare.value.model), encodeModel(explicit.value.model));
  assert.deepEqual(bare.value.report.parameters, {
    alpha: DEFAULT_MATCH_OPTIONS.alpha,
    beta: DEFAULT_MATCH_OPTIONS.beta,
  });
});
