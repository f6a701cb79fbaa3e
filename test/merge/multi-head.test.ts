/**
 * @file Multi-head assembly against an independent truth: with a trunk that computes exactly
 * one source's features, each head of the merged model reproduces its own source model, and
 * the combined output is the heads' mean (same classes) or their concatenation (disjoint).
 *
 * The case is built: B takes A's layers up to the stop point and another model's layers after
 * it, then B's channels are all permuted (function-preserving). Merging A and B with Permute
 * then matches B's trunk channels to A's exactly, so the merged trunk is A's trunk, and head
 * B must undo the permutation through U_B and compute B's own, different, function.
 * (partial.test.ts shows every stop point of a permuted pair (A, permute(A)) gives heads
 * equal to A; there both heads compute A's function, so heads swapped between the sources, or
 * one source's head built twice, would still pass.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { findStopPoints, type StopPoint } from '../../src/merge/stop-points.js';
import type { Model } from '../../src/onnx/model.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { fixtureModel, maxAbsDiff, runModel, zooModel } from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300, 5);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };
/**
 * Probe images from the merge data: a channel that never fires there has no correlation and
 * is matched arbitrarily, which changes nothing on the merge data but may elsewhere.
 */
const probe = Float32Array.from(
  mergeData.value.images.subarray(0, 8 * 784),
  (v) => (v / 255 - 0.286) / 0.353,
);

function stopPoints(model: Model): StopPoint[] {
  const graph = analyzeGraph(model);
  if (!graph.ok) throw new Error(graph.message);
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) throw new Error(spaces.message);
  return findStopPoints(graph.value, spaces.value);
}

/**
 * `other` with A's weights up to the stop point (the initializers A's nodes 0..position read),
 * its channels then permuted: a model of A's trunk and `other`'s head, reparametrised.
 */
function trunkOfAHeadOfOther(a: Model, other: Model, stop: StopPoint): Model {
  const initializers = new Map<string, Tensor>(other.graph.initializers);
  for (const node of a.graph.nodes.slice(0, stop.position + 1))
    for (const input of node.inputs) {
      const tensor = a.graph.initializers.get(input);
      if (tensor !== undefined) initializers.set(input, tensor);
    }
  const permuted = permuteChannels({ ...other, graph: { ...other.graph, initializers } }, 9);
  if (!permuted.ok) throw new Error(permuted.message);
  return permuted.value.model;
}

const close = (what: string, expected: ArrayLike<number>, actual: ArrayLike<number>): void => {
  const diff = maxAbsDiff(expected, actual);
  assert.ok(diff < 1e-4, `${what} differs by ${diff}`);
};

test('with the trunk of A, each head reproduces its own source at every stop point; the combined output is their mean', async () => {
  const a = fixtureModel('resnet8', 'a');
  const other = fixtureModel('resnet8', 'b');
  const expectedA = (await runModel(a, probe))['logits']!;
  for (const stop of stopPoints(a)) {
    const b = trunkOfAHeadOfOther(a, other, stop);
    const expectedB = (await runModel(b, probe))['logits']!;
    // The heads really differ, so a swapped or shared head fails.
    assert.ok(maxAbsDiff(expectedA, expectedB) > 1e-2);
    const merged = await mergeModels([a, b], ['a', 'b'], mergeData.value, normalization, {
      method: 'permute',
      repair: false,
      stopAt: stop.id,
    });
    assert.ok(merged.ok, merged.ok ? '' : merged.message);
    const out = await runModel(merged.value.model, probe);
    close(`${stop.id}: head a`, expectedA, out['logits_a']!);
    close(`${stop.id}: head b`, expectedB, out['logits_b']!);
    close(
      `${stop.id}: the combined output`,
      expectedA.map((v, i) => (v + expectedB[i]!) / 2),
      out['logits']!,
    );
  }
});

test('disjoint heads (7 + 3 classes): each head reproduces its source, the combined output concatenates them', async () => {
  const make = (classLabels: number[], seed: number): Model =>
    zooModel('mlp', seed, 1, classLabels);
  const a = make([0, 1, 2, 3, 4, 5, 6], 1);
  // Heads scoring different classes are cut at the deepest stop point.
  const stop = stopPoints(a).at(-1)!;
  const b = trunkOfAHeadOfOther(a, make([7, 8, 9], 2), stop);
  const merged = await mergeModels([a, b], ['a', 'b'], mergeData.value, normalization, {
    method: 'permute',
    repair: false,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.report.stopAt?.id, stop.id);
  const expectedA = (await runModel(a, probe))['logits']!;
  const expectedB = (await runModel(b, probe))['logits']!;
  const out = await runModel(merged.value.model, probe);
  close('head a', expectedA, out['logits_a']!);
  close('head b', expectedB, out['logits_b']!);
  // Per image: A's 7 logits, then B's 3.
  const concatenated = Array.from({ length: 8 }, (_, n) => [
    ...expectedA.subarray(n * 7, n * 7 + 7),
    ...expectedB.subarray(n * 3, n * 3 + 3),
  ]).flat();
  close('the combined output', concatenated, out['logits']!);
});
