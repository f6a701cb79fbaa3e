/** @file Permute baseline and the assignment solver: the reference's golden outputs, brute force. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { solveAssignment } from '../../src/match/assignment.js';
import { weightAverageMatch } from '../../src/match/identity.js';
import { permuteMatch } from '../../src/match/permute.js';
import { DEFAULT_MATCH_OPTIONS } from '../../src/match/types.js';
import { correlationFromCovariance } from '../../src/stats/covariance.js';
import { loadGoldenCases, partitionProblem, randomCorrelation, seededRandom } from './helpers.js';

/** Every permutation of 0..n-1 (Heap's algorithm). */
function permutations(n: number): number[][] {
  const result: number[][] = [];
  const current = Array.from({ length: n }, (_, i) => i);
  const counters = new Array<number>(n).fill(0);
  result.push([...current]);
  let i = 0;
  while (i < n) {
    if (counters[i]! < i) {
      const j = i % 2 === 0 ? 0 : counters[i]!;
      [current[j], current[i]] = [current[i]!, current[j]!];
      result.push([...current]);
      counters[i]!++;
      i = 0;
    } else {
      counters[i] = 0;
      i++;
    }
  }
  return result;
}

function assignmentCost(cost: Float64Array, n: number, columnOf: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += cost[i * n + columnOf[i]!]!;
  return sum;
}

function bruteForce(cost: Float64Array, n: number): { best: number; argmin: number[] } {
  let best = Infinity;
  let argmin: number[] = [];
  for (const p of permutations(n)) {
    const c = assignmentCost(cost, n, p);
    if (c < best) {
      best = c;
      argmin = p;
    }
  }
  return { best, argmin };
}

describe('permuteMatch against the reference (golden-matching fixture)', () => {
  for (const c of loadGoldenCases()) {
    it(`matches the reference's groups, n=${c.n} K=${c.K}`, () => {
      const total = c.n * c.K;
      const correlation = correlationFromCovariance(new Float64Array(c.covariance.flat()), total);
      const result = permuteMatch(correlation, c.K, c.n, DEFAULT_MATCH_OPTIONS);
      assert.ok(result.ok);
      assert.deepEqual(result.value.groups, c.permute.groups);
      assert.equal(result.value.crossModelMerges, (c.K - 1) * c.n);
    });
  }
});

describe('solveAssignment', () => {
  it('finds the brute-force optimum for every n <= 7', () => {
    const random = seededRandom(1234);
    for (let n = 1; n <= 7; n++) {
      for (let trial = 0; trial < 25; trial++) {
        // Half the trials use a few integer levels: many optimal assignments tie.
        const integer = trial % 2 === 0;
        const cost = new Float64Array(n * n).map(() =>
          integer ? Math.floor(random() * 4) : random() * 2 - 1,
        );
        const columnOf = solveAssignment(cost, n);
        assert.deepEqual(
          [...columnOf].sort((a, b) => a - b),
          Array.from({ length: n }, (_, i) => i),
          'not a permutation',
        );
        const { best, argmin } = bruteForce(cost, n);
        const found = assignmentCost(cost, n, columnOf);
        assert.ok(
          Math.abs(found - best) <= 1e-12,
          `n=${n} trial ${trial}: ${found} vs optimum ${best}`,
        );
        if (!integer)
          assert.deepEqual([...columnOf], argmin, `n=${n} trial ${trial}: unique optimum`);
      }
    }
  });

  it('solves structured costs: the identity, a shuffled identity, constant and negative costs', () => {
    const n = 6;
    const shuffle = [3, 0, 5, 1, 4, 2];
    const shuffled = new Float64Array(n * n).fill(1);
    for (let i = 0; i < n; i++) shuffled[i * n + shuffle[i]!] = 0;
    assert.deepEqual([...solveAssignment(shuffled, n)], shuffle);
    assert.equal(
      assignmentCost(
        new Float64Array(n * n).fill(-3),
        n,
        solveAssignment(new Float64Array(n * n).fill(-3), n),
      ),
      -18,
    );
  });
});

describe('permuteMatch', () => {
  it('maximises the summed correlation with model 0, per model (brute force, K=3, n<=6)', () => {
    const random = seededRandom(77);
    for (let n = 1; n <= 6; n++) {
      const numModels = 3;
      const total = numModels * n;
      const correlation = randomCorrelation(random, total);
      const result = permuteMatch(correlation, numModels, n, DEFAULT_MATCH_OPTIONS);
      assert.ok(result.ok);
      assert.equal(partitionProblem(result.value.groups, total), undefined);
      for (let k = 1; k < numModels; k++) {
        const cost = new Float64Array(n * n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) cost[i * n + j] = -correlation[i * total + k * n + j]!;
        }
        const chosen: number[] = result.value.groups.map((group) => group[k]! - k * n);
        assert.deepEqual(chosen, bruteForce(cost, n).argmin, `n=${n}, model ${k}`);
      }
    }
  });

  it('avoids forbidden (-Infinity) pairs when it can', () => {
    const n = 4;
    const total = 2 * n;
    const correlation = new Float64Array(total * total).fill(0.5);
    // Only the anti-diagonal is allowed.
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) if (i + j !== n - 1) correlation[i * total + n + j] = -Infinity;
    }
    const result = permuteMatch(correlation, 2, n, DEFAULT_MATCH_OPTIONS);
    assert.ok(result.ok);
    assert.deepEqual(result.value.groups, [
      [0, 7],
      [1, 6],
      [2, 5],
      [3, 4],
    ]);
  });

  it('recovers the permutation when model B is model A permuted', () => {
    const random = seededRandom(8);
    const n = 30;
    const a = randomCorrelation(random, n, { samples: 500 });
    const permutation = Array.from({ length: n }, (_, i) => i).sort(() => random() - 0.5);
    const total = 2 * n;
    const feature = (f: number): number => (f < n ? f : permutation[f - n]!);
    const correlation = new Float64Array(total * total);
    for (let i = 0; i < total; i++) {
      for (let j = 0; j < total; j++) correlation[i * total + j] = a[feature(i) * n + feature(j)]!;
    }
    const result = permuteMatch(correlation, 2, n, DEFAULT_MATCH_OPTIONS);
    assert.ok(result.ok);
    assert.deepEqual(
      result.value.groups,
      Array.from({ length: n }, (_, i) => [i, n + permutation.indexOf(i)]),
    );
  });

  it('gives finite, complete groups with dead (zero-variance) channels', () => {
    const n = 5;
    const total = 2 * n;
    const covariance = new Float64Array(total * total);
    for (let i = 0; i < total; i++) covariance[i * total + i] = i === 3 || i === 7 ? 0 : 1;
    const correlation = correlationFromCovariance(covariance, total);
    assert.ok(correlation.every(Number.isFinite));
    for (const matcher of [permuteMatch, weightAverageMatch]) {
      const result = matcher(correlation, 2, n, DEFAULT_MATCH_OPTIONS);
      assert.ok(result.ok);
      assert.equal(partitionProblem(result.value.groups, total), undefined);
    }
  });
});

describe('weightAverageMatch', () => {
  it('groups feature i of every model', () => {
    const result = weightAverageMatch(new Float64Array(36), 3, 2, DEFAULT_MATCH_OPTIONS);
    assert.ok(result.ok);
    assert.deepEqual(result.value.groups, [
      [0, 2, 4],
      [1, 3, 5],
    ]);
    assert.equal(result.value.crossModelMerges, 4);
    assert.equal(result.value.sameModelMerges, 0);
  });
});
