/**
 * @file Vision transformers exported by PyTorch (test/fixtures/torch-vit, both exports: opset 13
 * with LayerNorm written out, opset 17 with LayerNormalization), against independent truth:
 * onnxruntime running the model and its reparametrisations. The spaces the analysis finds are
 * exact where a permutation within every head keeps the function (and one across heads does
 * not); merging a model with such a permuted copy returns the model, fully and cut at every
 * block boundary.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { countMacs } from '../../src/graph/flops.js';
import { applyTransforms } from '../../src/merge/apply.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { mergeModels, type MergeOptions } from '../../src/merge/pipeline.js';
import { findStopPoints } from '../../src/merge/stop-points.js';
import { permutationTransform, type SpaceTransform } from '../../src/merge/transform.js';
import { readModelFile } from '../../src/onnx/files.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor, sizeOf } from '../../src/onnx/tensor.js';
import { Random } from '../../src/tensor/random.js';
import { buildZooModel } from '../../src/zoo/architectures.js';
import { fashionMergeData, imagesAsInput, runFirstOutput } from '../exporters/helpers.js';
import { maxAbsDiff, runZipit, spacesOf, temporaryDirectory, TEST_DIR } from '../helpers.js';

// The zoo's ViT (what `zipit train --arch vit` starts from) has the torch script's layout with
// our own graph: Reshape with copied dims, an Expand of the class token from Shape, Erf GELU.
const EXPORTS = ['a-opset13.onnx', 'a-opset17.onnx', 'zoo-vit'] as const;
const normalization = { mean: 0.286, std: 0.353 };
const shape = [1, 28, 28];

function vit(file: string): Model {
  if (file === 'zoo-vit') return zooVit();
  const model = readModelFile(`${TEST_DIR}/fixtures/torch-vit/${file}`);
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/** The zoo ViT as `zipit train --arch vit` initialises it. */
function zooVit(): Model {
  const built = buildZooModel({
    arch: 'vit',
    width: 1,
    seed: 4,
    inputShape: [1, 28, 28],
    classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    preprocessing: { mean: [normalization.mean], std: [normalization.std] },
  });
  if (!built.ok) throw new Error(built.message);
  return built.value;
}

/**
 * `model` with every parameter redrawn from N(0, 0.3^2). The zoo ViT's initial weights (std
 * 0.02) make every attention near uniform, and permuting channels across heads (the negative
 * control) would change the output too little to tell.
 */
function sharpened(model: Model): Model {
  const random = new Random(21);
  const initializers = new Map(model.graph.initializers);
  for (const [name, t] of initializers) {
    if (t.dtype !== 'float32' || sizeOf(t.dims) === 1) continue;
    const values = Float32Array.from({ length: sizeOf(t.dims) }, () => 0.3 * random.normal());
    initializers.set(name, float32Tensor(t.dims, values));
  }
  return { ...model, graph: { ...model.graph, initializers } };
}

const data = fashionMergeData();
const probe = imagesAsInput(data, 8, normalization.mean, normalization.std);
const outputOf = (model: Model): Promise<Float32Array> => runFirstOutput(model, probe, shape, 8);

/** Merges `a` with `b` exactly as the exactness tests need (beta 0, no correction, raw logits). */
const mergeExactly = (a: Model, b: Model, options: Partial<MergeOptions> = {}) =>
  mergeModels([a, b], ['A', 'B'], data, normalization, {
    method: 'zipit',
    match: { alpha: 0.5, beta: 0 },
    repair: false,
    logits: 'raw',
    batchSize: 100,
    threads: 1,
    ...options,
  });

for (const file of EXPORTS) {
  test(`${file}: one residual stream, and per block a Q/K space and a V space split into 4 heads and an MLP space`, () => {
    const analysis = spacesOf(vit(file));
    const mergeable = analysis.spaces.filter((s) => s.kind !== 'fixed');
    const stream = mergeable.filter((s) => s.width === 64 && s.groups === undefined);
    assert.equal(stream.length, 1);
    // The patch embedding, and every block's attention output and MLP output, write the stream.
    assert.equal(stream[0]!.producers.length, 1 + 2 * 4);
    // Its parameters include the class token and the positional embedding.
    assert.ok(stream[0]!.parameters.includes('cls'));
    assert.ok(stream[0]!.parameters.includes('pos'));
    const headed = mergeable.filter((s) => s.groups === 4);
    assert.equal(headed.length, 8);
    const queryKey = headed.filter((s) => s.producers.length === 2);
    const value = headed.filter((s) => s.producers.length === 1);
    assert.equal(queryKey.length, 4);
    assert.equal(value.length, 4);
    // Q and K are read only by each other (no weight op): measured on both projections'
    // outputs, every token of the queries and of the keys an observation.
    for (const s of queryKey) {
      assert.deepEqual(s.consumers, []);
      assert.ok(s.site !== undefined && s.site.axis === 2);
      assert.equal(s.alsoAt?.length, 1);
      assert.equal(s.alsoAt?.[0]?.axis, 2);
      assert.match(s.site.value, /q\/Add(_output_0)?$/);
      assert.match(s.alsoAt![0]!.value, /k\/Add(_output_0)?$/);
    }
    // V's channels reach the output projection through the heads.
    for (const s of value) assert.equal(s.consumers.length, 1);
    // Each block's scores weigh its own values: the attentions pair them, in block order.
    assert.deepEqual(
      analysis.attention,
      queryKey.map((qk, i) => ({ queryKey: qk.id, value: value[i]!.id })),
    );
    assert.equal(mergeable.filter((s) => s.width === 128).length, 4);
  });

  test(`${file}: MACs per image count attention's products`, () => {
    const graph = analyzeGraph(vit(file));
    assert.ok(graph.ok);
    // Patch conv 64 x 7 x 7 x 16; per block q, k, v, proj 4 x 50 x 64 x 64, Q K^T and scores x V
    // 2 x 4 x 50 x 50 x 16, fc1 and fc2 2 x 50 x 128 x 64; head 10 x 64.
    const block = 4 * 50 * 64 * 64 + 2 * 4 * 50 * 50 * 16 + 2 * 50 * 128 * 64;
    assert.equal(countMacs(graph.value), 64 * 49 * 16 + 4 * block + 640);
  });

  test(`${file}: a permutation within every head keeps the function; one across heads does not`, async () => {
    const model = file === 'zoo-vit' ? sharpened(vit(file)) : vit(file);
    const expected = await outputOf(model);
    const permuted = permuteChannels(model, 5);
    assert.ok(permuted.ok, permuted.ok ? '' : permuted.message);
    assert.ok(maxAbsDiff(expected, await outputOf(permuted.value.model)) < 1e-4);
    // Negative control: permute the first Q/K space across its heads (every channel moved to
    // another head). The analysis's head constraint is what made the permutation above exact.
    const graph = analyzeGraph(model);
    assert.ok(graph.ok);
    const analysis = spacesOf(model);
    const queryKey = analysis.spaces.find((s) => s.groups === 4 && s.producers.length === 2)!;
    const across = Int32Array.from({ length: 64 }, (_, c) => (c + 16) % 64);
    const transforms = new Map<number, SpaceTransform>([
      [queryKey.id, permutationTransform(across)],
    ]);
    const identity = [new Map([...graph.value.model.graph.initializers.keys()].map((k) => [k, k]))];
    const crossed = applyTransforms([graph.value], identity, analysis, transforms);
    assert.ok(maxAbsDiff(expected, await outputOf(crossed)) > 1e-2);
    // ... while the same shift of whole heads inside one head's block would not change it: a
    // shuffle within each head, drawn here, keeps it.
    const random = new Random(9);
    const within = new Int32Array(64);
    for (let h = 0; h < 4; h++) {
      const inner = random.permutation(16);
      for (let j = 0; j < 16; j++) within[h * 16 + j] = h * 16 + inner[j]!;
    }
    const kept = applyTransforms(
      [graph.value],
      identity,
      analysis,
      new Map([[queryKey.id, permutationTransform(within)]]),
    );
    assert.ok(maxAbsDiff(expected, await outputOf(kept)) < 1e-4);
  });

  for (const method of ['zipit', 'permute', 'weights'] as const)
    test(`${file}: ${method} merges a head-wise permuted copy back to the model (no correction)`, async () => {
      const model = vit(file);
      const permuted = permuteChannels(model, 7);
      assert.ok(permuted.ok);
      const merged = await mergeExactly(model, permuted.value.model, { method });
      assert.ok(merged.ok, merged.ok ? '' : merged.message);
      const diff = maxAbsDiff(await outputOf(model), await outputOf(merged.value.model));
      assert.ok(diff < 1e-4, `differs by ${diff}`);
    });
}

for (const file of ['a-opset17.onnx', 'zoo-vit'] as const)
  test(`${file}: heads shuffled as wholes (one order for Q/K and V): the function is kept, matching heads merges it back, heads in place do not`, async () => {
    // The zoo ViT sharpened: at its initial weights heads in place would differ too little.
    const model = file === 'zoo-vit' ? sharpened(vit(file)) : vit(file);
    const expected = await outputOf(model);
    const shuffled = permuteChannels(model, 13, { heads: true });
    assert.ok(shuffled.ok);
    assert.ok(maxAbsDiff(expected, await outputOf(shuffled.value.model)) < 1e-4);
    // The draw moved heads: some Q/K channel left its head.
    const analysis = spacesOf(model);
    const moved = analysis.attention.some(({ queryKey }) => {
      const perm = shuffled.value.permutations.get(queryKey)!;
      return perm.some((p, c) => Math.floor(p / 16) !== Math.floor(c / 16));
    });
    assert.ok(moved);
    const merge = (method: 'zipit' | 'permute', heads: 'match' | 'in-place') =>
      mergeExactly(model, shuffled.value.model, { method, heads });
    for (const method of ['zipit', 'permute'] as const) {
      const matched = await merge(method, 'match');
      assert.ok(matched.ok, matched.ok ? '' : matched.message);
      assert.ok(maxAbsDiff(expected, await outputOf(matched.value.model)) < 1e-4, method);
    }
    const inPlace = await merge('zipit', 'in-place');
    assert.ok(inPlace.ok);
    assert.ok(maxAbsDiff(expected, await outputOf(inPlace.value.model)) > 1e-2);
  });

test('REPAIR corrects every MatMul producer of a ViT merge: a permuted copy merges back to within its batch-statistics drift', async () => {
  const model = vit('a-opset13.onnx');
  const permuted = permuteChannels(model, 3);
  assert.ok(permuted.ok);
  const merged = await mergeModels([model, permuted.value.model], ['A', 'B'], data, normalization, {
    method: 'zipit',
    match: { alpha: 0.5, beta: 0 },
    repair: true,
    logits: 'raw',
    // One batch: REPAIR's per-batch normalisation then equals the folded map (repair.ts NOTE).
    batchSize: 200,
    threads: 1,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.report.correction, 'repair');
  // q, k, v, the output projection, fc1 and fc2 of each of the 4 blocks: a shift Add each.
  const shifts = [...merged.value.model.graph.initializers.keys()].filter((n) =>
    n.endsWith('/zipit_shift'),
  );
  assert.equal(shifts.length, 6 * 4);
  // Each of the 25 corrections divides by float32 batch statistics (about 1e-4 relative each);
  // measured 1.4e-3 on logits of size 5. A wrong axis or a missed producer moves them by units.
  const diff = maxAbsDiff(await outputOf(model), await outputOf(merged.value.model));
  assert.ok(diff < 5e-3, `the merge differs by ${diff}`);
});

for (const file of ['a-opset17.onnx', 'zoo-vit'] as const)
  test(`${file}: zipped up to every block boundary, each head of the merge computes the model`, async () => {
    const model = vit(file);
    const permuted = permuteChannels(model, 11);
    assert.ok(permuted.ok);
    const graph = analyzeGraph(model);
    assert.ok(graph.ok);
    const points = findStopPoints(graph.value, spacesOf(model));
    // After the embedding, after each block's attention and MLP (the last block's MLP taken at
    // the class token, the same layers deep).
    assert.equal(points.length, 1 + 2 * 4);
    assert.equal(points[points.length - 1]!.axis, 1);
    const expected = await outputOf(model);
    for (const point of points) {
      const merged = await mergeExactly(model, permuted.value.model, { stopAt: point.id });
      assert.ok(merged.ok, merged.ok ? '' : `${point.id}: ${merged.message}`);
      // One head per model, then the combined output.
      assert.equal(merged.value.model.graph.outputs.length, 3, point.id);
      const diff = maxAbsDiff(expected, await outputOf(merged.value.model));
      assert.ok(diff < 1e-4, `${point.id}: head A differs by ${diff}`);
    }
  });

test('EXPECTED FAILURE - CCA refuses a transformer in one line', async () => {
  const model = vit('a-opset17.onnx');
  // CCA's dense maps meet the LayerNorms (per-channel scales) first.
  const cca = await mergeModels([model, model], ['A', 'B'], data, normalization, {
    method: 'cca',
    repair: false,
    logits: 'raw',
  });
  assert.equal(cca.ok, false);
  assert.match(cca.ok ? '' : cca.message, /LayerNormalization node .* use --method zipit\.$/);
});

test('zipit inspect names the heads of a ViT; zipit merge refuses an unknown --heads rule in one line', async () => {
  const path = `${TEST_DIR}/fixtures/torch-vit/a-opset13.onnx`;
  const shown = await runZipit(['inspect', path, '--json']);
  assert.equal(shown.code, 0, shown.stderr);
  const parsed = JSON.parse(shown.stdout) as { spaces: { heads?: number }[] };
  assert.equal(parsed.spaces.filter((s) => s.heads === 4).length, 8);
  const text = await runZipit(['inspect', path]);
  assert.equal(text.stdout.match(/, 4 attention heads/g)?.length, 8);
  const out = join(temporaryDirectory('vit-cli'), 'm.onnx');
  const refused = await runZipit(['merge', path, path, '--out', out, '--heads', 'sideways']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /--heads.*sideways.*match, in-place/);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
  assert.equal(existsSync(out), false);
});
