/**
 * @file Determinism: the same inputs, flags, seed and thread count give a byte-identical
 * merged ONNX file; another thread count is measured (onnxruntime's GEMMs split their sums by
 * thread, so float rounding may differ) and printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeModels, type MergeOptions } from '../../src/merge/pipeline.js';
import { encodeModel, type Model } from '../../src/onnx/model.js';
import { fixtureModel, maxAbsDiff } from '../helpers.js';
import { fashionMergeData } from '../exporters/helpers.js';

const NORMALIZATION = { mean: 0.286, std: 0.353 };

async function merge(threads: number, method: MergeOptions['method']): Promise<Model> {
  const result = await mergeModels(
    [fixtureModel('resnet8', 'a'), fixtureModel('resnet8', 'b')],
    ['a.onnx', 'b.onnx'],
    fashionMergeData(11),
    NORMALIZATION,
    { method, match: { alpha: 0.3, beta: 0.125 }, repair: true, batchSize: 100, threads },
  );
  assert.ok(result.ok, result.ok ? '' : result.message);
  return result.value.model;
}

/** Largest absolute difference over all float initializers of two merged models. */
function maxWeightDiff(a: Model, b: Model): number {
  let max = 0;
  for (const [name, tensor] of a.graph.initializers) {
    if (tensor.dtype !== 'float32') continue;
    const other = b.graph.initializers.get(name);
    assert.ok(other, `${name} missing`);
    max = Math.max(max, maxAbsDiff(tensor.data as Float32Array, other.data as Float32Array));
  }
  return max;
}

test('the same inputs, flags, seed and threads give a byte-identical merged ONNX (ZipIt! + REPAIR)', async (t) => {
  const once = await merge(1, 'zipit');
  const first = encodeModel(once);
  const second = encodeModel(await merge(1, 'zipit'));
  assert.equal(Buffer.compare(Buffer.from(first), Buffer.from(second)), 0);
  const two = await merge(2, 'zipit');
  const diff = maxWeightDiff(once, two);
  const identical = Buffer.compare(Buffer.from(first), Buffer.from(encodeModel(two))) === 0;
  t.diagnostic(`threads 1 vs 2: ${identical ? 'byte-identical' : `max abs weight diff ${diff}`}`);
  // Any difference is float rounding in the statistics, not a different matching.
  assert.ok(diff < 1e-3, `threads 1 vs 2 differ by ${diff}`);
});
