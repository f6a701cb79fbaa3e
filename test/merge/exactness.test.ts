/**
 * @file Exactness: B = A with every space's channels permuted computes A's function; merging
 * (A, B) with ZipIt! (beta = 0) or Permute, correction off, must give back A's outputs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import type { Model } from '../../src/onnx/model.js';
import { fixtureModel, maxAbsDiff, runModel, zooModel } from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300, 1);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };

/**
 * Probe images from the merge data itself: a channel that never fires on the merge data has
 * zero variance and no correlation, so its match is arbitrary; on the merge data that cannot
 * change the output, on other inputs it may.
 */
function probe(): Float32Array {
  const input = new Float32Array(8 * 784);
  const images = mergeData.ok ? mergeData.value.images : new Uint8Array(input.length);
  for (let i = 0; i < input.length; i++) input[i] = (images[i]! / 255 - 0.286) / 0.353;
  return input;
}

const cases: [string, () => Model][] = [
  ['MLP (zoo)', () => zooModel('mlp')],
  ['VGG with BatchNorm (zoo)', () => zooModel('vgg')],
  ['ResNet-20 with BatchNorm (zoo)', () => zooModel('resnet20')],
  ['ResNet-8, BN folded (PyTorch export)', () => fixtureModel('resnet8', 'a')],
];

for (const [name, make] of cases) {
  test(`a function-preserving permutation is exact: ${name}`, async () => {
    const a = make();
    const b = permuteChannels(a, 11);
    assert.ok(b.ok);
    const input = probe();
    const outA = await runModel(a, input);
    const outB = await runModel(b.value.model, input);
    const key = Object.keys(outA)[0]!;
    assert.ok(
      maxAbsDiff(outA[key]!, outB[key]!) < 1e-4,
      'the permuted model must compute the same function',
    );
    // And it really is a different parametrisation.
    const weight = [...a.graph.initializers.keys()].find((k) => /weight/.test(k))!;
    assert.ok(
      maxAbsDiff(
        a.graph.initializers.get(weight)!.data as Float32Array,
        b.value.model.graph.initializers.get(weight)!.data as Float32Array,
      ) > 1e-3,
    );

    for (const method of ['zipit', 'permute'] as const) {
      const merged = await mergeModels(
        [a, b.value.model],
        ['A', 'B'],
        mergeData.value,
        normalization,
        { method, match: { alpha: 0.3, beta: 0 }, repair: false },
      );
      assert.ok(merged.ok, merged.ok ? '' : merged.message);
      assert.equal(
        merged.value.report.spaces.reduce((s, r) => s + r.sameModelMerges, 0),
        0,
      );
      const outMerged = await runModel(merged.value.model, input);
      const diff = maxAbsDiff(outA[key]!, outMerged[key]!);
      assert.ok(diff < 1e-4, `${method}: merged outputs differ from A's by ${diff}`);
    }
  });
}

test('weight averaging a model with its permuted copy is NOT the identity (the test can fail)', async () => {
  const a = zooModel('mlp');
  const b = permuteChannels(a, 11);
  assert.ok(b.ok);
  const merged = await mergeModels([a, b.value.model], ['A', 'B'], mergeData.value, normalization, {
    method: 'wavg',
    match: { alpha: 0.3, beta: 0 },
    repair: false,
  });
  assert.ok(merged.ok);
  const input = probe();
  assert.ok(
    maxAbsDiff(
      (await runModel(a, input)).logits!,
      (await runModel(merged.value.model, input)).logits!,
    ) > 1e-2,
  );
});

test('with correction on, a permuted pair still merges back to A (BN reset and REPAIR)', async () => {
  // One batch of all 300 images: batch statistics are then the data's (see repair.ts's NOTE).
  const options = {
    method: 'permute',
    match: { alpha: 0.3, beta: 0 },
    repair: true,
    batchSize: 300,
  } as const;
  // A zoo model's BN statistics are the initial (0, 1); reset them once on the merge data so
  // A's channels are alive there (dead channels match arbitrarily) and a reset is idempotent.
  const vgg = await mergeModels(
    [zooModel('vgg'), zooModel('vgg')],
    ['A', 'A'],
    mergeData.value,
    normalization,
    options,
  );
  assert.ok(vgg.ok);
  for (const a of [vgg.value.model, fixtureModel('resnet8', 'a')]) {
    const b = permuteChannels(a, 5);
    assert.ok(b.ok);
    const merged = await mergeModels(
      [a, b.value.model],
      ['A', 'B'],
      mergeData.value,
      normalization,
      options,
    );
    assert.ok(merged.ok);
    const input = probe();
    const expected = await runModel(a, input);
    const key = Object.keys(expected)[0]!;
    const actual = (await runModel(merged.value.model, input))[key]!;
    const diff = maxAbsDiff(expected[key]!, actual);
    assert.ok(
      diff < 1e-3,
      `${merged.value.report.correction}: merged outputs differ from A's by ${diff}`,
    );
  }
});

test('REPAIR folds into a Gemm whose C is scaled by beta or is one scalar: a permuted pair merges back to A', async () => {
  // Gemm adds beta * C, and C may broadcast one value over all outputs: the fold must read
  // the bias the Gemm really adds, not C[c] (which is NaN past a scalar C's one entry).
  const base = zooModel('mlp');
  const initializers = new Map(base.graph.initializers);
  const fc1Bias = initializers.get('fc1.bias')!.data as Float32Array;
  initializers.set('fc1.bias', {
    dtype: 'float32',
    dims: [256],
    data: fc1Bias.map((v) => v * 4),
  });
  initializers.set('fc2.bias', { dtype: 'float32', dims: [1], data: Float32Array.of(0.05) });
  const nodes = base.graph.nodes.map((n) =>
    n.name === 'fc1'
      ? { ...n, attributes: { ...n.attributes, beta: { type: 'float' as const, value: 0.25 } } }
      : n,
  );
  const a: Model = { ...base, graph: { ...base.graph, nodes, initializers } };
  const b = permuteChannels(a, 5);
  assert.ok(b.ok, b.ok ? '' : b.message);
  const merged = await mergeModels([a, b.value.model], ['A', 'B'], mergeData.value, normalization, {
    method: 'permute',
    match: { alpha: 0.3, beta: 0 },
    repair: true,
    batchSize: 300,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.report.correction, 'repair');
  const input = probe();
  const expected = (await runModel(a, input)).logits!;
  const diff = maxAbsDiff(expected, (await runModel(merged.value.model, input)).logits!);
  assert.ok(diff < 1e-3, `merged outputs differ from A's by ${diff}`);
});
