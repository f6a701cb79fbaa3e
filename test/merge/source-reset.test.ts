/**
 * @file The sources' BatchNorm reset (--reset-sources, the reference's scripts' step before
 * merging) against independent truths: after it, every BN's running statistics are the batch
 * statistics of its input in a plain pass of the reset source on the merge data; a merge asked to
 * reset equals a merge of sources reset beforehand; and weight averaging, which reads no
 * statistics, gives the same model from reset and untouched sources once the merged model's own
 * BN reset has run, which is why the merge skips the sources' reset there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { resetSources } from '../../src/merge/source-reset.js';
import { readModelFile } from '../../src/onnx/files.js';
import type { Model } from '../../src/onnx/model.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { TEST_DIR } from '../helpers.js';
import { checkAgainstPass, oneBatch, withBiasedVariances } from './channel-statistics.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 200, 5);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };
// One batch: the reset's batch statistics are then the whole merge data's.
const batchSize = mergeData.value.count;

function read(path: string): Model {
  const model = readModelFile(`${TEST_DIR}/fixtures/${path}`);
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/** The two ResNet-20s trained by `zipit train` (BatchNorm kept), on disjoint halves of the classes. */
const trainedPair = (): Model[] => [
  read('official-eval/zipit-trained-pair/a.onnx'),
  read('official-eval/zipit-trained-pair/b.onnx'),
];

/** The largest |difference| over every float initializer of two models of one structure. */
function largestWeightDifference(a: Model, b: Model): number {
  let largest = 0;
  for (const [name, tensor] of a.graph.initializers) {
    if (tensor.dtype !== 'float32') continue;
    const mine = (tensor as Tensor<'float32'>).data;
    const other = (b.graph.initializers.get(name) as Tensor<'float32'>).data;
    mine.forEach((v, i) => (largest = Math.max(largest, Math.abs(v - other[i]!))));
  }
  return largest;
}

test("each reset source's BN running statistics are the batch statistics of a plain pass on the merge data", async () => {
  const reset = await resetSources(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    batchSize,
  });
  assert.ok(reset.ok, reset.ok ? '' : reset.message);
  const input = oneBatch(mergeData.value, normalization);
  for (const [k, model] of reset.value.entries()) {
    const bnNodes = model.graph.nodes.filter((n) => n.opType === 'BatchNormalization');
    assert.equal(bnNodes.length, 21);
    // Normalising with the biased variances, as the reset's pass did (batchnorm-reset.test.ts).
    const counts = await checkAgainstPass(model, model, input, bnNodes, 2e-3, `source ${k}`);
    await checkAgainstPass(
      model,
      withBiasedVariances(model, bnNodes, counts),
      input,
      bnNodes,
      2e-5,
      `source ${k} with the biased variances`,
    );
    // Only the running statistics changed.
    const original = trainedPair()[k]!;
    const statistics = new Set(bnNodes.flatMap((n) => [n.inputs[3]!, n.inputs[4]!]));
    for (const [name, tensor] of original.graph.initializers)
      if (!statistics.has(name))
        assert.deepEqual(model.graph.initializers.get(name)!.data, tensor.data, name);
  }
});

test('a source without BatchNorm passes unchanged', async () => {
  const mlp = [read('torch-fmnist/mlp/a.onnx'), read('torch-fmnist/mlp/b.onnx')];
  const reset = await resetSources(mlp, ['a', 'b'], mergeData.value, normalization);
  assert.ok(reset.ok, reset.ok ? '' : reset.message);
  assert.equal(reset.value[0], mlp[0]);
  assert.equal(reset.value[1], mlp[1]);
});

test('a ZipIt! merge asked to reset its sources equals the merge of sources reset beforehand', async () => {
  const options = { method: 'zipit' as const, batchSize };
  const asked = await mergeModels(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    ...options,
    resetSources: true,
  });
  assert.ok(asked.ok, asked.ok ? '' : asked.message);
  assert.equal(asked.value.report.sourcesReset, true);
  const reset = await resetSources(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    batchSize,
  });
  assert.ok(reset.ok);
  const before = await mergeModels(
    reset.value,
    ['a', 'b'],
    mergeData.value,
    normalization,
    options,
  );
  assert.ok(before.ok, before.ok ? '' : before.message);
  assert.equal(before.value.report.sourcesReset, false);
  assert.equal(largestWeightDifference(asked.value.model, before.value.model), 0);
  // Told they were reset already (compare resets once for all its merges): same model, recorded.
  const already = await mergeModels(reset.value, ['a', 'b'], mergeData.value, normalization, {
    ...options,
    resetSources: 'already',
  });
  assert.ok(already.ok, already.ok ? '' : already.message);
  assert.equal(already.value.report.sourcesReset, true);
  assert.equal(already.value.model.metadata['zipit.sources_reset'], 'true');
  assert.equal(largestWeightDifference(asked.value.model, already.value.model), 0);
  // And the reset changes what ZipIt! matched: the statistics it reads are not the same.
  const kept = await mergeModels(
    trainedPair(),
    ['a', 'b'],
    mergeData.value,
    normalization,
    options,
  );
  assert.ok(kept.ok);
  assert.ok(largestWeightDifference(asked.value.model, kept.value.model) > 1e-3);
});

test("weight averaging gives the same model from reset and untouched sources after the merged model's BN reset", async () => {
  const options = { method: 'wavg' as const, batchSize };
  const reset = await resetSources(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    batchSize,
  });
  assert.ok(reset.ok);
  const fromReset = await mergeModels(
    reset.value,
    ['a', 'b'],
    mergeData.value,
    normalization,
    options,
  );
  const fromKept = await mergeModels(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    ...options,
    resetSources: true,
  });
  assert.ok(fromReset.ok && fromKept.ok);
  // Skipped: nothing of the sources' running statistics survives the merged model's reset.
  assert.equal(fromKept.value.report.sourcesReset, false);
  assert.ok(largestWeightDifference(fromReset.value.model, fromKept.value.model) < 1e-5);
  // Without that final reset the sources' statistics stay in the merged model: the merge resets them.
  const unrepaired = await mergeModels(trainedPair(), ['a', 'b'], mergeData.value, normalization, {
    ...options,
    repair: false,
    resetSources: true,
  });
  assert.ok(unrepaired.ok);
  assert.equal(unrepaired.value.report.sourcesReset, true);
});
