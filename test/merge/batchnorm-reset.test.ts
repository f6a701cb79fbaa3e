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
import type { Model, Node } from '../../src/onnx/model.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { TEST_DIR } from '../helpers.js';
import { capture, channelMoments, oneBatch, worstRelative } from './channel-statistics.js';

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

const floats = (model: Model, name: string): Float32Array =>
  (model.graph.initializers.get(name) as Tensor<'float32'>).data;

/**
 * The merged model with each BN's running variance taken back to the biased batch variance
 * (times (P - 1) / P, P values per channel): the normalisation the reset's pass used, as a BN
 * in PyTorch's train mode divides by the biased variance and records the unbiased one.
 */
function withBiasedVariances(model: Model, bnNodes: readonly Node[], counts: number[]): Model {
  const initializers = new Map(model.graph.initializers);
  bnNodes.forEach((node, i) => {
    const p = counts[i]!;
    const unbiased = floats(model, node.inputs[4]!);
    initializers.set(node.inputs[4]!, {
      dtype: 'float32',
      dims: [unbiased.length],
      data: unbiased.map((v) => (v * (p - 1)) / p),
    });
  });
  return { ...model, graph: { ...model.graph, initializers } };
}

/**
 * Checks every BN's running statistics against the batch statistics of its input in a plain
 * pass of `run`: the mean to within `tolerance` of the channel's std, the variance to within
 * `tolerance` relative. Returns P per BN.
 */
async function checkAgainstPass(
  merged: Model,
  run: Model,
  bnNodes: readonly Node[],
  tolerance: number,
  what: string,
): Promise<number[]> {
  const captured = await capture(
    run,
    input,
    bnNodes.map((n) => n.inputs[0]!),
  );
  return bnNodes.map((node) => {
    const { mean, variance, count } = channelMoments(captured[node.inputs[0]!]!);
    const unbiased = variance.map((v) => (v * count) / (count - 1));
    const runningMean = floats(merged, node.inputs[3]!);
    const runningVariance = floats(merged, node.inputs[4]!);
    let meanError = { error: 0, channel: -1 };
    for (let c = 0; c < mean.length; c++) {
      const error = Math.abs(runningMean[c]! - mean[c]!) / Math.sqrt(variance[c]! + 1e-12);
      if (!(error <= meanError.error)) meanError = { error, channel: c };
    }
    const varianceError = worstRelative(runningVariance, unbiased, 1e-12);
    assert.ok(
      meanError.error < tolerance,
      `${what}, ${node.name}: running mean of channel ${meanError.channel} is ${runningMean[meanError.channel]}, the batch mean ${mean[meanError.channel]}`,
    );
    assert.ok(
      varianceError.error < tolerance,
      `${what}, ${node.name}: running variance of channel ${varianceError.channel} is ${runningVariance[varianceError.channel]}, the unbiased batch variance ${unbiased[varianceError.channel]}`,
    );
    return count;
  });
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
    const counts = await checkAgainstPass(model, model, bnNodes, 2e-3, 'the merged model');
    // Normalising as the reset's pass did, they agree to float32 rounding (about 2e-6 seen).
    await checkAgainstPass(
      model,
      withBiasedVariances(model, bnNodes, counts),
      bnNodes,
      2e-5,
      'with the biased variances',
    );
  });
}
