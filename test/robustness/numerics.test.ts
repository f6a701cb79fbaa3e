/**
 * @file Numbers that break float32 (issue 15, point 4): a std that is 0 in float32 is refused
 * up front, saying whether it came from the flag or from the model's stored preprocessing, and
 * a merged model with a non-finite weight is never produced (nor written by the CLI).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeModels } from '../../src/merge/pipeline.js';
import { checkMergedWeightsFinite } from '../../src/merge/finite-output.js';
import type { Model } from '../../src/onnx/model.js';
import { resolvePreprocessing } from '../../src/onnx/preprocessing.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { runZipit as zipit, temporaryDirectory, zooModel } from '../helpers.js';
import { syntheticData } from '../exporters/helpers.js';

const MLP_A = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const MLP_B = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'b.onnx');

/** A zoo MLP whose stored preprocessing says std `std`. */
function withStoredStd(std: string): Model {
  const model = zooModel('mlp');
  return { ...model, metadata: { ...model.metadata, 'zipit.std': std } };
}

test('EXPECTED FAILURE - --std 1e-300 is refused: it is 0 in float32', () => {
  const result = resolvePreprocessing(zooModel('mlp'), { std: [1e-300] }, 'a.onnx');
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-argument');
  assert.equal(
    result.message,
    'Expected --std to be positive normal float32 values (from 1.2e-38 to 3.4e+38), got 1e-300 (it is 0 in float32).',
  );
  // Subnormal: not 0, but only a few bits left.
  const subnormal = resolvePreprocessing(zooModel('mlp'), { std: [0.5, 1e-40] }, 'a.onnx');
  assert.ok(!subnormal.ok);
  assert.match(subnormal.message, /got 1e-40 \(it loses precision in float32\)/);
  assert.ok(resolvePreprocessing(zooModel('mlp'), { std: [1e-30] }, 'a.onnx').ok);
});

test("EXPECTED FAILURE - a stored std of 0 is reported as the model's, not as the --std flag", () => {
  const result = resolvePreprocessing(withStoredStd('0'), {}, 'p/a.onnx');
  assert.ok(!result.ok);
  assert.equal(
    result.message,
    'Expected the std stored in p/a.onnx (zipit.std) to be positive normal float32 values (from 1.2e-38 to 3.4e+38), got 0; pass --std to override it.',
  );
  // The flag overrides the stored value.
  assert.ok(resolvePreprocessing(withStoredStd('0'), { std: [0.35] }, 'p/a.onnx').ok);
});

test('EXPECTED FAILURE - a merge whose statistics overflow produces no model: the weight and the cause are named', async () => {
  // The library takes the normalisation as given (1e-300 is a positive double): the inputs
  // become ±Infinity in float32, the statistics NaN, and the corrected biases NaN.
  const models = [zooModel('mlp', 1), zooModel('mlp', 2)];
  const result = await mergeModels(
    models,
    ['a.onnx', 'b.onnx'],
    syntheticData([1, 28, 28], 40),
    { mean: 0.286, std: 1e-300 },
    { method: 'permute', match: { alpha: 0.3, beta: 0 }, batchSize: 20, threads: 1 },
  );
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-statistics');
  assert.match(
    result.message,
    /^Merged weight '[^']+' has \d+ non-finite values \((NaN|-?Infinity) at index \d+\), so no merged model is produced; likely cause: the normalised inputs reach 7\.1e\+299 \(mean 0\.286, std 1e-300\): check --mean and --std, or the preprocessing stored in the models\.$/,
  );
});

test('checkMergedWeightsFinite names the first non-finite float tensor and ignores integer ones', () => {
  const model = zooModel('mlp');
  const initializers = new Map(model.graph.initializers);
  initializers.set('bad', float32Tensor([3], Float32Array.of(1, NaN, Infinity)));
  const broken = { ...model, graph: { ...model.graph, initializers } };
  const result = checkMergedWeightsFinite(broken, { mean: 0.5, std: 0.25 });
  assert.ok(!result.ok);
  assert.equal(
    result.message,
    "Merged weight 'bad' has 2 non-finite values (NaN at index 1), so no merged model is produced; likely cause: the source models' activations on this data overflowed float32 in the merge statistics.",
  );
  assert.ok(checkMergedWeightsFinite(model, { mean: 0.5, std: 0.25 }).ok);
});

test('EXPECTED FAILURE - zipit merge --std 1e-300 exits 1 with one line and writes nothing', async () => {
  const out = join(temporaryDirectory('zipit-numerics-'), 'merged.onnx');
  const { code, stderr } = await zipit([
    'merge',
    MLP_A,
    MLP_B,
    '--out',
    out,
    '--mean',
    '0.286',
    '--std',
    '1e-300',
    '--samples',
    '50',
  ]);
  assert.equal(code, 1, stderr);
  assert.equal(
    stderr.trim(),
    'zipit: error: Expected --std to be positive normal float32 values (from 1.2e-38 to 3.4e+38), got 1e-300 (it is 0 in float32).',
  );
  assert.equal(existsSync(out), false);
});
