/**
 * @file PyTorch ViT exports (test/fixtures/torch-vit, from scripts/torch-train-vit.py): for both
 * models and both opsets (13: LayerNorm decomposed, 17: LayerNormalization), onnxruntime
 * computes PyTorch's logits and the task accuracy PyTorch measured: the fixtures are what
 * PyTorch trained. Their analysis and merges are tested in test/merge/vit.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { subset } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { modelScores } from '../../src/eval/evaluate.js';
import { readModelFile } from '../../src/onnx/files.js';
import { defaultOpset } from '../../src/onnx/model.js';
import { maxAbsDiff, TEST_DIR } from '../helpers.js';

const VIT_DIR = join(TEST_DIR, 'fixtures', 'torch-vit');

/** One model of torch-vit/manifest.json. */
interface VitModel {
  readonly name: string;
  readonly classes: number[];
  /** Opset -> file name. */
  readonly files: Record<string, string>;
  /** PyTorch's logits of the first 4 test images. */
  readonly first4_logits: number[][];
  /** PyTorch's task accuracy on the task's images among the first `images` test images. */
  readonly checked_accuracy: { readonly images: number; readonly task: number };
}

const manifest = JSON.parse(readFileSync(join(VIT_DIR, 'manifest.json'), 'utf8')) as {
  preprocess: { mean: number; std: number };
  models: VitModel[];
};

const loaded = loadFashionMnist('test');
if (!loaded.ok) throw new Error(loaded.message);
const testSet = loaded.value;

/** On the images labelled with one of `classes`, how often the argmax among them is the label. */
function taskAccuracy(logits: Float32Array, labels: Uint8Array, classes: number[]): number {
  let seen = 0;
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    if (!classes.includes(labels[i]!)) continue;
    let best = classes[0]!;
    for (const c of classes) if (logits[i * 10 + c]! > logits[i * 10 + best]!) best = c;
    seen++;
    if (best === labels[i]) right++;
  }
  return right / seen;
}

for (const entry of manifest.models) {
  for (const [opset, file] of Object.entries(entry.files)) {
    test(`torch ViT '${file}' (classes ${entry.classes.join(',')}): onnxruntime gives PyTorch's logits and task accuracy`, async () => {
      const model = readModelFile(join(VIT_DIR, file));
      assert.ok(model.ok, model.ok ? '' : model.message);
      assert.equal(defaultOpset(model.value), Number(opset));
      const ops = new Set(model.value.graph.nodes.map((n) => n.opType));
      for (const op of ['MatMul', 'Softmax', 'Erf', 'Concat']) assert.ok(ops.has(op), op);
      // Opset 17 exports LayerNorm as one node; opset 13 writes it out with ReduceMean.
      assert.equal(ops.has('LayerNormalization'), Number(opset) >= 17);
      assert.equal(ops.has('ReduceMean'), Number(opset) < 17);

      const count = entry.checked_accuracy.images;
      const data = count < testSet.count ? subset(testSet, [...Array(count).keys()]) : testSet;
      const scores = await modelScores(
        {
          model: model.value,
          label: file,
          mean: [manifest.preprocess.mean],
          std: [manifest.preprocess.std],
        },
        data,
        { threads: 1, batchSize: 250 },
      );
      assert.ok(scores.ok, scores.ok ? '' : scores.message);
      assert.equal(scores.value.length, 1);
      const logits = scores.value[0]!.logits;
      assert.equal(logits.length, count * 10);

      const diff = maxAbsDiff(logits.subarray(0, 40), entry.first4_logits.flat());
      assert.ok(diff < 1e-4, `logits differ from PyTorch's by ${diff}`);
      const accuracy = taskAccuracy(logits, data.labels, entry.classes);
      assert.ok(
        Math.abs(accuracy - entry.checked_accuracy.task) < 1e-3,
        `task accuracy ${accuracy} on the first ${count} test images, PyTorch's ${entry.checked_accuracy.task}`,
      );
    });
  }
}
