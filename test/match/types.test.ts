/** @file Merge/unmerge matrices and their per-model blocks; correlation from covariance. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  correlationFromCovariance,
  mergeMatrix,
  modelMergeBlock,
  modelUnmergeBlock,
  unmergeMatrix,
  type Matching,
} from '../../src/match/types.js';

// K = 2 models of n = 3 features merged into m = 3: {0, 4}, {1, 2, 5}, {3}.
const matching: Matching = {
  numModels: 2,
  width: 3,
  mergedWidth: 3,
  groups: [[0, 4], [1, 2, 5], [3]],
  sameModelMerges: 1,
  crossModelMerges: 2,
};

describe('merge and unmerge matrices', () => {
  it('build M [m, Kn] averaging each group and U [Kn, m] of 0/1', () => {
    const third = 1 / 3;
    // prettier-ignore
    assert.deepEqual([...mergeMatrix(matching)], [
      0.5, 0, 0, 0, 0.5, 0,
      0, third, third, 0, 0, third,
      0, 0, 0, 1, 0, 0,
    ]);
    // prettier-ignore
    assert.deepEqual([...unmergeMatrix(matching)], [
      1, 0, 0,
      0, 1, 0,
      0, 1, 0,
      0, 0, 1,
      1, 0, 0,
      0, 1, 0,
    ]);
  });

  it('satisfy M U = I (merging what was unmerged changes nothing)', () => {
    const merge = mergeMatrix(matching);
    const unmerge = unmergeMatrix(matching);
    const m = 3;
    const total = 6;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < m; c++) {
        let sum = 0;
        for (let f = 0; f < total; f++) sum += merge[r * total + f]! * unmerge[f * m + c]!;
        assert.ok(Math.abs(sum - (r === c ? 1 : 0)) < 1e-15, `(M U)[${r}, ${c}] = ${sum}`);
      }
    }
  });

  it('split into per-model blocks M = [M_0 M_1] and U = [U_0; U_1]', () => {
    const merge = mergeMatrix(matching);
    const unmerge = unmergeMatrix(matching);
    for (let k = 0; k < 2; k++) {
      const mergeBlock = modelMergeBlock(matching, k);
      const unmergeBlock = modelUnmergeBlock(matching, k);
      for (let c = 0; c < 3; c++) {
        for (let j = 0; j < 3; j++) {
          assert.equal(mergeBlock[c * 3 + j], merge[c * 6 + k * 3 + j]);
          assert.equal(unmergeBlock[j * 3 + c], unmerge[(k * 3 + j) * 3 + c]);
        }
      }
    }
    assert.throws(() => modelMergeBlock(matching, 2), RangeError);
  });
});

describe('correlationFromCovariance', () => {
  it('divides by the product of standard deviations', () => {
    const covariance = Float64Array.from([4, 2, -3, 2, 9, 0, -3, 0, 1]);
    const expected = [1, 2 / 6, -3 / 2, 2 / 6, 1, 0, -3 / 2, 0, 1];
    assert.deepEqual([...correlationFromCovariance(covariance, 3)], expected);
  });

  it('gives 0, never NaN, for dead channels and slightly negative variances', () => {
    const covariance = Float64Array.from([1, 0, 0.5, 0, 0, 0, 0.5, 0, -1e-20]);
    const correlation = correlationFromCovariance(covariance, 3);
    assert.ok(correlation.every(Number.isFinite));
    assert.deepEqual([...correlation], [1, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('clamps tiny denominators to 1e-7', () => {
    const covariance = Float64Array.from([1e-16, 1e-15, 1e-15, 1e-16]);
    assert.equal(correlationFromCovariance(covariance, 2)[1], 1e-15 / 1e-7);
  });
});
