/** @file Every PyTorch fixture runs on onnxruntime with PyTorch's logits and accuracies (its manifest). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { modelScores } from '../../src/eval/evaluate.js';
import { scoreTasks } from '../../src/eval/metrics.js';
import { fixtureModel, fixturePairs, maxAbsDiff, runModel } from '../helpers.js';

const testSet = loadFashionMnist('test');
if (!testSet.ok) throw new Error(testSet.message);
const images = testSet.value.images;

function firstImages(n: number): Float32Array {
  const input = new Float32Array(n * 784);
  for (let i = 0; i < input.length; i++) input[i] = (images[i]! / 255 - 0.286) / 0.353;
  return input;
}

for (const pair of fixturePairs()) {
  test(`${pair.name}: first logits and accuracies equal PyTorch's`, async () => {
    assert.deepEqual(Array.from(testSet.value.labels.subarray(0, 8)), pair.first8_test_labels);
    const tasks = [pair.classes_a, pair.classes_b];
    const a = fixtureModel(pair.dir, 'a');
    const b = fixtureModel(pair.dir, 'b');
    for (const [model, expected] of [
      [a, pair.first8_logits_a],
      [b, pair.first8_logits_b],
    ] as const) {
      const logits = (await runModel(model, firstImages(8)))['logits']!;
      // The manifest rounds to 5 decimals.
      assert.ok(
        maxAbsDiff(logits, expected.flat()) < 2e-4,
        `logits differ by ${maxAbsDiff(logits, expected.flat())}`,
      );
    }
    // Each model runs once; the ensemble is scored from the same logits.
    const scores = async (model: typeof a) => {
      const result = await modelScores(
        { model, label: 'fixture', mean: [0.286], std: [0.353] },
        testSet.value,
      );
      if (!result.ok) throw new Error(result.message);
      return result.value;
    };
    const sourcesA = await scores(a);
    const sourcesB = await scores(b);
    // The manifest's "ensemble" averages the logits for its task accuracies: not the
    // reference's rule, which official-scores.test.ts checks on the same pairs.
    for (const [sources, expected] of [
      [sourcesA, pair.model_a],
      [sourcesB, pair.model_b],
    ] as const) {
      const result = scoreTasks(sources, testSet.value.labels, tasks);
      // Float32 ties and summation order may flip a rare image: within a few images of 10,000.
      assert.ok(
        Math.abs(result.joint - expected.joint) <= 2e-4,
        `joint ${result.joint} vs ${expected.joint}`,
      );
      assert.ok(Math.abs(result.tasks[0]! - expected.task0) <= 4e-4);
      assert.ok(Math.abs(result.tasks[1]! - expected.task1) <= 4e-4);
    }
  });
}
