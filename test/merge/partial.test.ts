/** @file Partial zipping: stop points, exact multi-head models, disjoint heads of unequal size. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { evaluateModels } from '../../src/eval/evaluate.js';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { countMacs } from '../../src/graph/flops.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { findStopPoints, resolveStopPoint } from '../../src/merge/stop-points.js';
import type { Model } from '../../src/onnx/model.js';
import { storedTasks } from '../../src/onnx/preprocessing.js';
import { fixtureModel, maxAbsDiff, runModel, zooModel } from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const data = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300, 2);
if (!data.ok) throw new Error(data.message);
const normalization = { mean: [0.286], std: [0.353] };
const probe = (): Float32Array =>
  Float32Array.from(data.value.images.subarray(0, 8 * 784), (v) => (v / 255 - 0.286) / 0.353);

function stopPoints(model: Model) {
  const graph = analyzeGraph(model);
  if (!graph.ok) throw new Error(graph.message);
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) throw new Error(spaces.message);
  return findStopPoints(graph.value, spaces.value);
}

test("ResNet-20's stop points count weight layers like the paper: stage ends at 7/20, 13/20, 19/20", () => {
  const points = stopPoints(zooModel('resnet20'));
  assert.deepEqual(
    points.map((p) => `${p.zipped}/${p.total}`),
    ['1/20', '3/20', '5/20', '7/20', '9/20', '11/20', '13/20', '15/20', '17/20', '19/20'],
  );
  const stage2 = resolveStopPoint(points, '0.65');
  assert.ok(stage2.ok);
  assert.equal(stage2.value.zipped, 13);
  // Inside a block two values are live (the block's branch and the skip): not a cut.
  assert.equal(
    points.some((p) => p.id.includes('conv')),
    false,
  );
});

test('EXPECTED FAILURE - a stop point that does not exist', () => {
  const result = resolveStopPoint(stopPoints(zooModel('mlp')), 'nope');
  assert.ok(!result.ok);
  assert.match(
    result.message,
    /^Unknown stop point 'nope'; expected a node name, a space id or a fraction in \(0, 1\); valid: relu \(space 1, 1\/3\), relu_1 \(space 2, 2\/3\)\.$/,
  );
});

for (const [name, model] of [
  ['ResNet-8 (PyTorch export)', fixtureModel('resnet8', 'a')],
  ['VGG (zoo)', zooModel('vgg')],
  // Its third stage has 128 channels: unmerge indices longer than the 64 values the graph
  // analysis tracks (a Gather on them used to fail).
  ['ResNet-20 x2 (zoo)', zooModel('resnet20', 1, 2)],
] as const) {
  test(`every stop point of a permuted pair gives heads equal to A: ${name}`, async () => {
    const b = permuteChannels(model, 3);
    assert.ok(b.ok);
    const input = probe();
    const expected = (await runModel(model, input))['logits']!;
    for (const point of stopPoints(model)) {
      const merged = await mergeModels(
        [model, b.value.model],
        ['a.onnx', 'b.onnx'],
        data.value,
        normalization,
        {
          method: 'permute',
          match: { alpha: 0.3, beta: 0 },
          repair: false,
          stopAt: point.id,
        },
      );
      assert.ok(merged.ok, merged.ok ? '' : merged.message);
      const out = await runModel(merged.value.model, input);
      assert.deepEqual(Object.keys(out).sort(), ['logits', 'logits_a', 'logits_b']);
      for (const key of ['logits_a', 'logits_b', 'logits']) {
        assert.ok(
          maxAbsDiff(expected, out[key]!) < 1e-4,
          `${point.id} ${key}: ${maxAbsDiff(expected, out[key]!)}`,
        );
      }
      // The trunk runs once, each head once.
      const graph = analyzeGraph(merged.value.model);
      assert.ok(graph.ok);
      assert.equal(countMacs(graph.value), point.trunkMacs + 2 * point.headMacs);
    }
  });
}

test('disjoint heads of unequal size (7 + 3 classes) merge into concatenated heads and evaluate', async () => {
  const make = (classLabels: number[], seed: number): Model =>
    zooModel('mlp', seed, 1, classLabels);
  const a = make([0, 1, 2, 3, 4, 5, 6], 1);
  const b = make([7, 8, 9], 2);
  const merged = await mergeModels([a, b], ['a.onnx', 'b.onnx'], data.value, normalization, {
    method: 'zipit',
    match: { alpha: 0.3, beta: 0.125 },
    repair: true,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.report.stopAt?.zipped, 2);
  const out = await runModel(merged.value.model, probe());
  assert.equal(out['logits_a']!.length, 8 * 7);
  assert.equal(out['logits_b']!.length, 8 * 3);
  assert.equal(out['logits']!.length, 8 * 10);
  const test = loadFashionMnist('test');
  assert.ok(test.ok);
  const accuracy = await evaluateModels(
    [{ model: merged.value.model, label: 'merged', ...normalization }],
    test.value,
    [
      [0, 1, 2, 3, 4, 5, 6],
      [7, 8, 9],
    ],
  );
  assert.ok(accuracy.ok, accuracy.ok ? '' : accuracy.message);
  assert.equal(accuracy.value.tasks.length, 2);
  assert.equal(accuracy.value.n, 10000);
});

test("a merge stores its sources' trained classes, one set per source, so scoring needs no --tasks", async () => {
  const trained = (seed: number, classes: number[]): Model => ({
    ...zooModel('mlp', seed),
    metadata: { ...zooModel('mlp', seed).metadata, 'zipit.trained_classes': classes.join(',') },
  });
  const a = trained(1, [0, 2, 4, 6, 8]);
  const b = trained(2, [1, 3, 5, 7, 9]);
  const merged = await mergeModels([a, b], ['a.onnx', 'b.onnx'], data.value, normalization, {
    method: 'wavg',
    match: { alpha: 0.3, beta: 0.125 },
    repair: false,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.model.metadata['zipit.trained_classes'], '0,2,4,6,8/1,3,5,7,9');
  assert.deepEqual(storedTasks([merged.value.model]), [
    [0, 2, 4, 6, 8],
    [1, 3, 5, 7, 9],
  ]);
  // A source without the entry: the merge stores none rather than a partial list.
  const plain = await mergeModels(
    [a, zooModel('mlp', 3)],
    ['a.onnx', 'c.onnx'],
    data.value,
    normalization,
    {
      method: 'wavg',
      match: { alpha: 0.3, beta: 0.125 },
      repair: false,
    },
  );
  assert.ok(plain.ok);
  assert.equal(plain.value.model.metadata['zipit.trained_classes'], undefined);
});
