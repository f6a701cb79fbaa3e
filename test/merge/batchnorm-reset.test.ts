/**
 * @file BatchNorm reset against an independent truth: after a merge, every BN's running mean
 * and variance equal the per-channel mean and unbiased variance (PyTorch's running_var) of
 * that BN's input in a plain forward pass of the merged model on the merge data.
 *
 * The merge data goes through as one batch, so that the reset's batch statistics are the
 * data's. (exactness.test.ts shows that a reset gives back A on a permuted pair; this checks
 * the numbers on a merge of two different models, heads included.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { readModelFile } from '../../src/onnx/files.js';
import type { Model } from '../../src/onnx/model.js';
import { TEST_DIR } from '../helpers.js';
import { checkAgainstPass, oneBatch, withBiasedVariances } from './channel-statistics.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 200, 3);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };
const input = oneBatch(mergeData.value, normalization);

/** The two ResNet-20s trained by `zipit train` (BatchNorm kept), on disjoint halves of the classes. */
function trainedPair(): [Model, Model] {
  const read = (which: string): Model => {
    const model = readModelFile(`${TEST_DIR}/fixtures/official-eval/zipit-trained-pair/${which}`);
    if (!model.ok) throw new Error(model.message);
    return model.value;
  };
  return [read('a.onnx'), read('b.onnx')];
}

for (const stopAt of [undefined, 'relu_2'] as const) {
  const name = stopAt === undefined ? 'full zip' : `one head per model after ${stopAt}`;
  test(`BN running statistics equal the batch statistics of a plain pass of the merged model: ${name}`, async () => {
    const merged = await mergeModels(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
      method: 'zipit',
      batchSize: mergeData.value.count,
      ...(stopAt !== undefined ? { stopAt } : {}),
    });
    assert.ok(merged.ok, merged.ok ? '' : merged.message);
    assert.equal(merged.value.report.correction, 'batchnorm');
    const model = merged.value.model;
    const bnNodes = model.graph.nodes.filter((n) => n.opType === 'BatchNormalization');
    // ResNet-20 has 21 BNs; with heads, the trunk's and each head's own are all reset.
    assert.equal(bnNodes.length, stopAt === undefined ? 21 : 3 + 2 * 18);

    // NOTE: the merged model as saved normalises with the unbiased variance, the reset's pass
    // with the biased one: each BN upstream scales by sqrt(P / (P - 1)) more, which compounds
    // to about 7e-4 by the last stage (P = 200 x 7 x 7). 2e-3 allows for that.
    const counts = await checkAgainstPass(model, model, input, bnNodes, 2e-3, 'the merged model');
    // Normalising as the reset's pass did, they agree to float32 rounding (about 2e-6 seen).
    await checkAgainstPass(
      model,
      withBiasedVariances(model, bnNodes, counts),
      input,
      bnNodes,
      2e-5,
      'with the biased variances',
    );
  });
}
