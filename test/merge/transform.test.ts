/** @file The sparse merge/unmerge maps against dense M and U built from the Matching's definition. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Segment } from '../../src/graph/spaces.js';
import {
  applyAlongAxis,
  identityTransform,
  permutationTransform,
  transformFromGroups,
  type ChannelMap,
  type SpaceTransform,
} from '../../src/merge/transform.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { Random } from '../../src/tensor/random.js';

/** K models of n features each, grouped into m = groups.length merged features. */
interface Grouping {
  readonly name: string;
  readonly numModels: number;
  readonly width: number;
  readonly groups: readonly (readonly number[])[];
}

/** A dense matrix, row-major. */
interface Dense {
  readonly rows: number;
  readonly columns: number;
  readonly data: Float64Array;
}

/**
 * The truth, straight from ALGORITHM.md ("Matching"): U in {0,1}^{Kn x m} with U[f, c] = 1 iff
 * feature f is in group c, D = diag(column sums of U), M = (U D^-1)^T in R^{m x Kn}; then
 * M = [M_0 ... M_{K-1}] (m x n blocks) and U = [U_0; ...; U_{K-1}] (n x m blocks).
 */
function denseBlocks(grouping: Grouping): { merge: Dense[]; unmerge: Dense[] } {
  const { numModels, width: n, groups } = grouping;
  const m = groups.length;
  const total = numModels * n;
  const unmerge = new Float64Array(total * m); // [Kn, m]
  for (const [c, group] of groups.entries()) for (const f of group) unmerge[f * m + c] = 1;
  const columnSums = new Float64Array(m);
  for (let f = 0; f < total; f++) for (let c = 0; c < m; c++) columnSums[c]! += unmerge[f * m + c]!;
  const merge = new Float64Array(m * total); // [m, Kn] = (U D^-1)^T
  for (let c = 0; c < m; c++)
    for (let f = 0; f < total; f++) merge[c * total + f] = unmerge[f * m + c]! / columnSums[c]!;
  const mergeBlocks: Dense[] = [];
  const unmergeBlocks: Dense[] = [];
  for (let k = 0; k < numModels; k++) {
    const mk = new Float64Array(m * n); // [m, n]
    for (let c = 0; c < m; c++)
      for (let j = 0; j < n; j++) mk[c * n + j] = merge[c * total + k * n + j]!;
    const uk = unmerge.slice(k * n * m, (k + 1) * n * m); // [n, m]
    mergeBlocks.push({ rows: m, columns: n, data: mk });
    unmergeBlocks.push({ rows: n, columns: m, data: uk });
  }
  return { merge: mergeBlocks, unmerge: unmergeBlocks };
}

function matmul(a: Dense, b: Dense): Dense {
  assert.equal(a.columns, b.rows, 'matmul: inner sizes differ');
  const data = new Float64Array(a.rows * b.columns);
  for (let i = 0; i < a.rows; i++)
    for (let l = 0; l < a.columns; l++) {
      const x = a.data[i * a.columns + l]!;
      for (let j = 0; j < b.columns; j++)
        data[i * b.columns + j]! += x * b.data[l * b.columns + j]!;
    }
  return { rows: a.rows, columns: b.columns, data };
}

/** A (x) I_r: each row and column of `a` repeated as an r x r identity block. */
function kronIdentity(a: Dense, r: number): Dense {
  const columns = a.columns * r;
  const data = new Float64Array(a.rows * r * columns);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.columns; j++)
      for (let s = 0; s < r; s++)
        data[(i * r + s) * columns + j * r + s] = a.data[i * a.columns + j]!;
  return { rows: a.rows * r, columns, data };
}

/** Block-diagonal matrix of `blocks` (one per concatenated segment). */
function blockDiagonal(blocks: readonly Dense[]): Dense {
  const rows = blocks.reduce((t, b) => t + b.rows, 0);
  const columns = blocks.reduce((t, b) => t + b.columns, 0);
  const data = new Float64Array(rows * columns);
  let r0 = 0;
  let c0 = 0;
  for (const b of blocks) {
    for (let i = 0; i < b.rows; i++)
      for (let j = 0; j < b.columns; j++)
        data[(r0 + i) * columns + c0 + j] = b.data[i * b.columns + j]!;
    r0 += b.rows;
    c0 += b.columns;
  }
  return { rows, columns, data };
}

function transpose(a: Dense): Dense {
  const data = new Float64Array(a.rows * a.columns);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.columns; j++) data[j * a.rows + i] = a.data[i * a.columns + j]!;
  return { rows: a.columns, columns: a.rows, data };
}

function randomTensor(random: Random, dims: readonly number[]): Tensor<'float32'> {
  const size = dims.reduce((a, d) => a * d, 1);
  return {
    dtype: 'float32',
    dims: [...dims],
    data: Float32Array.from({ length: size }, () => random.normal()),
  };
}

/** `matrix` applied along `axis` of `tensor`: each vector tensor[o, :, s] becomes matrix @ it. */
function alongAxis(tensor: Tensor<'float32'>, axis: number, matrix: Dense): Float64Array {
  const dims = tensor.dims;
  const outer = dims.slice(0, axis).reduce((a, d) => a * d, 1);
  const inner = dims.slice(axis + 1).reduce((a, d) => a * d, 1);
  assert.equal(dims[axis], matrix.columns, 'alongAxis: the matrix does not fit the axis');
  const out = new Float64Array(outer * matrix.rows * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < matrix.rows; i++)
      for (let j = 0; j < matrix.columns; j++) {
        const w = matrix.data[i * matrix.columns + j]!;
        if (w === 0) continue;
        for (let s = 0; s < inner; s++)
          out[(o * matrix.rows + i) * inner + s]! +=
            w * tensor.data[(o * matrix.columns + j) * inner + s]!;
      }
  return out;
}

function assertClose(actual: Tensor<'float32'>, expected: Float64Array, what: string): void {
  assert.equal(actual.data.length, expected.length, `${what}: size`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual.data[i]! - expected[i]!);
    assert.ok(
      error <= 1e-6 * Math.max(1, Math.abs(expected[i]!)),
      `${what}: element ${i} is ${actual.data[i]}, the dense product gives ${expected[i]}`,
    );
  }
}

/** A random partition of [0, K*n) into m groups, each sorted, ordered by lowest member. */
function randomGrouping(random: Random, numModels: number, width: number, m: number): Grouping {
  const total = numModels * width;
  const order = random.permutation(total);
  const groups: number[][] = Array.from({ length: m }, (_, c) => [order[c]!]);
  for (let i = m; i < total; i++) groups[random.int(m)]!.push(order[i]!);
  for (const g of groups) g.sort((a, b) => a - b);
  groups.sort((a, b) => a[0]! - b[0]!);
  return { name: `random K=${numModels} n=${width} m=${m}`, numModels, width, groups };
}

const random = new Random(16);
const groupings: Grouping[] = [
  // K = 2, n = 3: a cross-model pair, a group of three with a same-model merge, one unmatched.
  { name: 'K=2 n=3 m=3', numModels: 2, width: 3, groups: [[0, 4], [1, 2, 5], [3]] },
  // K = 3, n = 4: one feature per model, a group of three, a group of four, two unmatched.
  {
    name: 'K=3 n=4 m=5',
    numModels: 3,
    width: 4,
    groups: [[0, 4, 8], [1, 2, 9], [3], [5, 6, 7, 10], [11]],
  },
  randomGrouping(random, 2, 6, 6),
  randomGrouping(random, 3, 5, 4),
  randomGrouping(random, 4, 3, 7),
];

describe('transformFromGroups against the dense M_k and U_k', () => {
  for (const grouping of groupings) {
    const { numModels, width: n } = grouping;
    const m = grouping.groups.length;
    const transform = transformFromGroups(grouping.groups, numModels, n);
    const dense = denseBlocks(grouping);
    const one: Segment[] = [{ space: 0, width: n, repeat: 1 }];

    it(`${grouping.name}: producers W <- M_k W (rows of a conv weight, a bias)`, () => {
      assert.equal(transform.mergedWidth, m);
      for (let k = 0; k < numModels; k++) {
        for (const dims of [[n, 2, 3, 3], [n]]) {
          const weight = randomTensor(random, dims);
          const merged = applyAlongAxis(weight, 0, one, [transform.rows[k]!]);
          assert.deepEqual(merged.dims, [m, ...dims.slice(1)]);
          assertClose(merged, alongAxis(weight, 0, dense.merge[k]!), `model ${k} [${dims}]`);
        }
      }
    });

    it(`${grouping.name}: consumers W <- W U_k (columns of a conv weight, OIhw,IU->OUhw)`, () => {
      for (let k = 0; k < numModels; k++) {
        const weight = randomTensor(random, [5, n, 3, 3]);
        const merged = applyAlongAxis(weight, 1, one, [transform.columns[k]!]);
        assert.deepEqual(merged.dims, [5, m, 3, 3]);
        // Along axis 1, W U_k applies U_k^T to each (o, h, w) column vector.
        assertClose(merged, alongAxis(weight, 1, transpose(dense.unmerge[k]!)), `model ${k}`);
      }
    });

    it(`${grouping.name}: a Gemm after a flatten of 2x2 sees U_k (x) I_4`, () => {
      const segments: Segment[] = [{ space: 0, width: n, repeat: 4 }];
      for (let k = 0; k < numModels; k++) {
        const weight = randomTensor(random, [7, n * 4]);
        const merged = applyAlongAxis(weight, 1, segments, [transform.columns[k]!]);
        assert.deepEqual(merged.dims, [7, m * 4]);
        const expected = alongAxis(weight, 1, kronIdentity(transpose(dense.unmerge[k]!), 4));
        assertClose(merged, expected, `model ${k}`);
      }
    });

    it(`${grouping.name}: sum_k M_k U_k = I (merging what was unmerged changes nothing)`, () => {
      const identity = new Float64Array(m * m);
      for (let c = 0; c < m; c++) identity[c * m + c] = 1;
      const product = new Float64Array(m * m);
      for (let k = 0; k < numModels; k++) {
        const unmergeK: Tensor<'float32'> = {
          dtype: 'float32',
          dims: [n, m],
          data: Float32Array.from(dense.unmerge[k]!.data),
        };
        const mu = applyAlongAxis(unmergeK, 0, one, [transform.rows[k]!]); // M_k U_k, [m, m]
        for (let i = 0; i < m * m; i++) product[i]! += mu.data[i]!;
      }
      for (let i = 0; i < m * m; i++)
        assert.ok(Math.abs(product[i]! - identity[i]!) < 1e-6, `(sum M_k U_k)[${i}]`);
    });
  }

  it('W* = sum_k M_k(out) W_k U_k(in) across two spaces and several models', () => {
    const numModels = 3;
    const inSpace = randomGrouping(random, numModels, 4, 3);
    const outSpace = randomGrouping(random, numModels, 5, 6);
    const inT = transformFromGroups(inSpace.groups, numModels, 4);
    const outT = transformFromGroups(outSpace.groups, numModels, 5);
    const inDense = denseBlocks(inSpace);
    const outDense = denseBlocks(outSpace);
    const merged = new Float64Array(6 * 3);
    const expected = new Float64Array(6 * 3);
    for (let k = 0; k < numModels; k++) {
      const weight = randomTensor(random, [5, 4]); // [out, in] of model k
      const rows = applyAlongAxis(weight, 0, [{ space: 1, width: 5, repeat: 1 }], [outT.rows[k]!]);
      const both = applyAlongAxis(rows, 1, [{ space: 0, width: 4, repeat: 1 }], [inT.columns[k]!]);
      for (let i = 0; i < merged.length; i++) merged[i]! += both.data[i]!;
      const dense: Dense = { rows: 5, columns: 4, data: Float64Array.from(weight.data) };
      const product = matmul(matmul(outDense.merge[k]!, dense), inDense.unmerge[k]!);
      for (let i = 0; i < expected.length; i++) expected[i]! += product.data[i]!;
    }
    assertClose(
      { dtype: 'float32', dims: [6, 3], data: Float32Array.from(merged) },
      expected,
      'W*',
    );
  });

  it('a channel Concat of two spaces: one map per segment (block-diagonal)', () => {
    const a = groupings[0]!; // n = 3
    const b = groupings[2]!; // n = 6
    const ta = transformFromGroups(a.groups, 2, 3);
    const tb = transformFromGroups(b.groups, 2, 6);
    const da = denseBlocks(a);
    const db = denseBlocks(b);
    const segments: Segment[] = [
      { space: 0, width: 3, repeat: 1 },
      { space: 1, width: 6, repeat: 1 },
    ];
    for (let k = 0; k < 2; k++) {
      const producer = randomTensor(random, [9, 2]);
      const rows = applyAlongAxis(producer, 0, segments, [ta.rows[k]!, tb.rows[k]!]);
      const mergeK = blockDiagonal([da.merge[k]!, db.merge[k]!]);
      assertClose(rows, alongAxis(producer, 0, mergeK), `rows of model ${k}`);
      const consumer = randomTensor(random, [4, 9, 2, 2]);
      const columns = applyAlongAxis(consumer, 1, segments, [ta.columns[k]!, tb.columns[k]!]);
      const unmergeK = blockDiagonal([da.unmerge[k]!, db.unmerge[k]!]);
      assertClose(columns, alongAxis(consumer, 1, transpose(unmergeK)), `columns of model ${k}`);
    }
  });
});

describe('fixed and single-model transforms', () => {
  it('identityTransform is M_k = I/K, U_k = I', () => {
    const numModels = 3;
    const n = 4;
    const t: SpaceTransform = identityTransform(numModels, n);
    const one: Segment[] = [{ space: 0, width: n, repeat: 1 }];
    const identity = new Float64Array(n * n);
    for (let j = 0; j < n; j++) identity[j * n + j] = 1;
    const scaled: Dense = { rows: n, columns: n, data: identity.map((v) => v / numModels) };
    for (let k = 0; k < numModels; k++) {
      const weight = randomTensor(random, [n, 3]);
      assertClose(
        applyAlongAxis(weight, 0, one, [t.rows[k]!]),
        alongAxis(weight, 0, scaled),
        'M_k',
      );
      assertClose(
        applyAlongAxis(weight, 0, one, [t.columns[k]!]),
        Float64Array.from(weight.data),
        'U_k',
      );
    }
  });

  it('permutationTransform puts source channel perm[c] at c, in rows and columns', () => {
    const perm = Int32Array.from([2, 0, 3, 1]);
    const t = permutationTransform(perm);
    const p = new Float64Array(16); // P[c, perm[c]] = 1
    for (const [c, source] of perm.entries()) p[c * 4 + source] = 1;
    const permutation: Dense = { rows: 4, columns: 4, data: p };
    const one: Segment[] = [{ space: 0, width: 4, repeat: 1 }];
    const weight = randomTensor(random, [4, 4]);
    const rows: ChannelMap = t.rows[0]!;
    assertClose(applyAlongAxis(weight, 0, one, [rows]), alongAxis(weight, 0, permutation), 'rows');
    assertClose(
      applyAlongAxis(weight, 1, one, [t.columns[0]!]),
      alongAxis(weight, 1, permutation),
      'columns',
    );
  });
});
