/**
 * @file CCA merge and dual-space similarity against independent truth: the eigendecomposition
 * reconstructs its matrix; CCA recovers the exact linear map between two spaces that are linear
 * re-mixes of each other and undoes a function-preserving permutation in a whole model; the
 * weight similarity of a model with its permuted copy is 1 exactly on the permutation; both
 * merge a model with its permuted copy back to the model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import type { Model } from '../../src/onnx/model.js';
import { ccaTransform } from '../../src/merge/cca.js';
import {
  alignmentFromPermutations,
  mixSimilarities,
  weightSimilarities,
} from '../../src/merge/dual-space.js';
import { analyzeModels, mergeModels, type MergeOptions } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import type { ChannelMap } from '../../src/merge/transform.js';
import { symmetricEigen, symmetricFunction, multiply } from '../../src/tensor/symmetric.js';
import { Random } from '../../src/tensor/random.js';
import { fixtureModel, maxAbsDiff, probeInput, runModel, zooModel } from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
// More images than the MLP's 256 channels: CCA needs a full-rank covariance (cca.ts).
const drawn = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300, 1);
if (!drawn.ok) throw new Error(drawn.message);
const mergeSet = drawn.value;
const normalization = { mean: [0.286], std: [0.353] };

function randomMatrix(random: Random, rows: number, columns: number): Float64Array {
  return Float64Array.from({ length: rows * columns }, () => random.normal());
}

/** A dense [outWidth, inWidth] matrix from a channel map. */
function dense(map: ChannelMap): Float64Array {
  const m = new Float64Array(map.outWidth * map.inWidth);
  for (let e = 0; e < map.out.length; e++)
    m[map.out[e]! * map.inWidth + map.in[e]!]! += map.weight[e]!;
  return m;
}

test('symmetricEigen: V diag(values) V^T is the matrix and V is orthogonal', () => {
  const random = new Random(3);
  for (const n of [1, 2, 7, 40]) {
    const g = randomMatrix(random, n, n);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j]! + g[j * n + i]!;
    const { values, vectors } = symmetricEigen(a, n);
    let worst = 0;
    let worstOrthogonal = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        let dot = 0;
        for (let k = 0; k < n; k++) {
          sum += vectors[i * n + k]! * values[k]! * vectors[j * n + k]!;
          dot += vectors[k * n + i]! * vectors[k * n + j]!;
        }
        worst = Math.max(worst, Math.abs(sum - a[i * n + j]!));
        worstOrthogonal = Math.max(worstOrthogonal, Math.abs(dot - (i === j ? 1 : 0)));
      }
    assert.ok(worst < 1e-10, `n ${n}: reconstruction off by ${worst}`);
    assert.ok(worstOrthogonal < 1e-12, `n ${n}: V^T V off the identity by ${worstOrthogonal}`);
    // The square root of A^2 (positive definite) squares back to A^2.
    const square = multiply(a, a, n, n, n);
    const root = symmetricFunction(square, n, Math.sqrt);
    assert.ok(
      maxAbs(multiply(root, root, n, n, n), square) <
        1e-8 * (1 + maxAbs(square, new Float64Array(n * n))),
    );
  }
});

function maxAbs(a: Float64Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

test('CCA: when model 1 is an invertible linear re-mix of model 0, T_1 undoes it (ridge near 0) and M U sums to I', () => {
  const random = new Random(5);
  const n = 6;
  const samples = 400;
  // f_1 = A f_0 for an invertible A: the stacked covariance is exactly [[C, C A^T], [A C, A C A^T]].
  const f0 = randomMatrix(random, samples, n);
  const mix = randomMatrix(random, n, n);
  for (let i = 0; i < n; i++) mix[i * n + i]! += 3;
  const stacked = new Float64Array(samples * 2 * n);
  for (let s = 0; s < samples; s++)
    for (let i = 0; i < n; i++) {
      stacked[s * 2 * n + i] = f0[s * n + i]!;
      let sum = 0;
      for (let j = 0; j < n; j++) sum += mix[i * n + j]! * f0[s * n + j]!;
      stacked[s * 2 * n + n + i] = sum;
    }
  const total = 2 * n;
  const covariance = new Float64Array(total * total);
  for (let s = 0; s < samples; s++)
    for (let i = 0; i < total; i++)
      for (let j = 0; j < total; j++)
        covariance[i * total + j]! += (stacked[s * total + i]! * stacked[s * total + j]!) / samples;
  const transform = ccaTransform(covariance, 2, n, 1e-12);
  assert.ok(transform.ok, transform.ok ? '' : transform.message);
  const [m0, m1] = transform.value.rows.map(dense);
  const [u0, u1] = transform.value.columns.map(dense); // U_k^T
  // M_1 = T_1 / 2 and T_1 A = I: the map sends f_1 back to f_0.
  const t1 = m1!.map((v) => 2 * v);
  const undone = multiply(t1, mix, n, n, n);
  const identity = new Float64Array(n * n);
  for (let i = 0; i < n; i++) identity[i * n + i] = 1;
  assert.ok(
    maxAbs(undone, identity) < 1e-8,
    `T_1 A is off the identity by ${maxAbs(undone, identity)}`,
  );
  // sum_k M_k U_k = I (columns hold U_k^T, so U_k = transpose).
  const t = (m: Float64Array): Float64Array => {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = m[i * n + j]!;
    return out;
  };
  const sum = multiply(m0!, t(u0!), n, n, n).map((v, i) => v + multiply(m1!, t(u1!), n, n, n)[i]!);
  assert.ok(maxAbs(sum, identity) < 1e-8);
});

test('CCA with a channel constant on the data: the live channels map exactly, the constant one to 0', () => {
  const random = new Random(9);
  const n = 5;
  const samples = 200;
  const perm = [3, 0, 4, 1, 2];
  const total = 2 * n;
  // Model 1's channels are model 0's permuted; model 0's channel 2 is constant (variance 0).
  const rows: Float64Array[] = [];
  for (let s = 0; s < samples; s++) {
    const row = new Float64Array(total);
    for (let i = 0; i < n; i++) row[i] = i === 2 ? 0.5 : random.normal();
    for (let i = 0; i < n; i++) row[n + i] = row[perm[i]!]!;
    rows.push(row);
  }
  const mean = new Float64Array(total);
  for (const row of rows) for (let i = 0; i < total; i++) mean[i]! += row[i]! / samples;
  const covariance = new Float64Array(total * total);
  for (const row of rows)
    for (let i = 0; i < total; i++)
      for (let j = 0; j < total; j++)
        covariance[i * total + j]! += ((row[i]! - mean[i]!) * (row[j]! - mean[j]!)) / samples;
  const transform = ccaTransform(covariance, 2, n);
  assert.ok(transform.ok, transform.ok ? '' : transform.message);
  const t1 = dense(transform.value.rows[1]!).map((v) => 2 * v);
  // Model 1's channel j is model 0's perm[j]: T_1 sends it there, exactly for the live ones.
  for (let j = 0; j < n; j++)
    for (let i = 0; i < n; i++) {
      const expected = i === perm[j] && perm[j] !== 2 ? 1 : 0;
      assert.ok(Math.abs(t1[i * n + j]! - expected) < 1e-6, `T_1[${i}, ${j}] = ${t1[i * n + j]}`);
    }
});

test('CCA merge refuses a partial zip: its dense unmerge cannot feed one head per model', async () => {
  const a = fixtureModel('resnet8', 'a');
  const merged = await mergeModels([a, a], ['A', 'B'], mergeSet, normalization, {
    method: 'cca',
    stopAt: '0.5',
  });
  assert.equal(merged.ok, false);
  assert.match(merged.ok ? '' : merged.message, /partial zip/);
});

test('CCA refuses a covariance of the wrong size and a ridge that is not positive', () => {
  assert.equal(ccaTransform(new Float64Array(10), 2, 3).ok, false);
  assert.equal(ccaTransform(new Float64Array(36), 2, 3, 0).ok, false);
});

const cases: [string, () => Model][] = [
  ['MLP (zoo)', () => zooModel('mlp')],
  ['ResNet-8, BN folded, residual spaces (PyTorch export)', () => fixtureModel('resnet8', 'a')],
];

/**
 * The first 8 merge images, normalised. CCA is exact only where the merge data are: a channel
 * that never fires on them (the untrained zoo MLP has some) has no covariance to be matched by,
 * and gets a map near 0 (cca.ts), which an input that makes it fire would show.
 */
function mergeImages(): Float32Array {
  const pixels = mergeSet.images.subarray(0, 8 * 28 * 28);
  return Float32Array.from(
    pixels,
    (p) => (p / 255 - normalization.mean[0]!) / normalization.std[0]!,
  );
}

async function mergesBack(
  a: Model,
  b: Model,
  options: MergeOptions,
  input = probeInput(),
  tolerance = 1e-4,
): Promise<void> {
  const merged = await mergeModels([a, b], ['A', 'B'], mergeSet, normalization, options);
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  const outA = await runModel(a, input);
  const outMerged = await runModel(merged.value.model, input);
  const key = Object.keys(outA)[0]!;
  const diff = maxAbsDiff(outA[key]!, outMerged[key]!);
  assert.ok(
    diff < tolerance,
    `${options.method} (repair ${String(options.repair ?? true)}): merged outputs differ from A's by ${diff}`,
  );
}

for (const [name, make] of cases) {
  test(`CCA merge and dual-space ZipIt! undo a function-preserving permutation: ${name}`, async () => {
    const a = make();
    const b = permuteChannels(a, 7);
    assert.ok(b.ok);
    await mergesBack(a, b.value.model, { method: 'cca', repair: false }, mergeImages());
    // With REPAIR after it (|weight|-averaged targets): on a permuted copy the merge is exact and
    // the correction leaves it so. One batch of all the merge images, so that batch statistics
    // are the data's (as in exactness.test.ts).
    await mergesBack(a, b.value.model, { method: 'cca', batchSize: 300 }, mergeImages(), 1e-3);
    await mergesBack(a, b.value.model, {
      method: 'zipit',
      match: { alpha: 0.5, beta: 0 },
      weightSimilarity: 0.5,
      repair: false,
    });
    const recorded = await mergeModels([a, b.value.model], ['A', 'B'], mergeSet, normalization, {
      method: 'permute',
      weightSimilarity: 0.25,
    });
    assert.ok(recorded.ok);
    assert.equal(recorded.value.report.parameters.weightSimilarity, 0.25);
    assert.equal(recorded.value.model.metadata['zipit.weight_similarity'], '0.25');
  });
}

test('weight similarity of a model and its permuted copy: 1 on the permutation, below 1 elsewhere; mixing keeps -Infinity', () => {
  const a = zooModel('resnet20');
  const b = permuteChannels(a, 13);
  assert.ok(b.ok);
  const graphs = analyzeModels([a, b.value.model], ['A', 'B']);
  assert.ok(graphs.ok);
  const spaces = analyzeSpaces(graphs.value[0]!);
  assert.ok(spaces.ok);
  const maps = checkSameStructure(graphs.value, ['A', 'B']);
  assert.ok(maps.ok);
  const mergeable = spaces.value.spaces.filter((s) => s.kind !== 'fixed');
  // The true alignment: model 0's channel i is model 1's channel inverse[i].
  const matchings = new Map(
    [...b.value.permutations].map(([id, perm]) => {
      const inverse = new Int32Array(perm.length);
      perm.forEach((from, c) => (inverse[from] = c));
      const n = perm.length;
      return [
        id,
        {
          numModels: 2,
          width: n,
          mergedWidth: n,
          groups: [...inverse].map((j, i) => [i, n + j]),
          sameModelMerges: 0,
          crossModelMerges: n,
        },
      ] as const;
    }),
  );
  const similarities = weightSimilarities(
    graphs.value,
    maps.value.initializers,
    spaces.value,
    mergeable,
    alignmentFromPermutations(matchings, 2),
  );
  for (const space of mergeable) {
    const s = similarities.get(space.id)!;
    const n = space.width;
    const inverse = matchings.get(space.id)!.groups;
    for (let i = 0; i < n; i++) {
      const partner = inverse[i]![1]!;
      assert.ok(
        Math.abs(s[i * 2 * n + partner]! - 1) < 1e-9,
        `space ${space.id}: ${i} vs its copy`,
      );
      for (let j = n; j < 2 * n; j++)
        if (j !== partner)
          assert.ok(s[i * 2 * n + j]! < 1 - 1e-6, `space ${space.id}: ${i} vs ${j}`);
    }
  }
  const mixed = mixSimilarities(
    Float64Array.from([0.5, -Infinity]),
    Float64Array.from([1, 1]),
    0.25,
  );
  assert.deepEqual([...mixed], [0.625, -Infinity]);
});

test('CCA merge refuses models with BatchNorm nodes, naming the way out', async () => {
  const a = zooModel('resnet20');
  const merged = await mergeModels([a, a], ['A', 'B'], mergeSet, normalization, { method: 'cca' });
  assert.equal(merged.ok, false);
  assert.match(merged.ok ? '' : merged.message, /BatchNorm folded/);
});

test('--weight-similarity outside [0, 1] is refused before any inference', async () => {
  const a = zooModel('mlp');
  const merged = await mergeModels([a, a], ['A', 'B'], mergeSet, normalization, {
    method: 'zipit',
    weightSimilarity: 1.5,
  });
  assert.equal(merged.ok, false);
  assert.match(merged.ok ? '' : merged.message, /--weight-similarity to be in \[0, 1\], got 1\.5/);
});
