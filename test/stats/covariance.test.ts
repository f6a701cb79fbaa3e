/** @file CovarianceAccumulator in float64 alone: moments, rebasing, shards, dead channels, failures. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { channelMeans } from '../../src/stats/activations.js';
import {
  correlationFromCovariance,
  CovarianceAccumulator,
  rebaseMoments,
} from '../../src/stats/covariance.js';
import { Random } from '../../src/tensor/random.js';
import {
  covarianceError,
  maxAbsDifference,
  randomBatch,
  referenceMoments,
  referenceStatistics,
} from './reference.js';

function finalized(acc: CovarianceAccumulator) {
  const stats = acc.finalize();
  assert.ok(stats.ok, stats.ok ? '' : stats.message);
  return stats.value;
}

describe('CovarianceAccumulator (float64 moments)', () => {
  const random = new Random(11);
  const batches = [4, 3, 5].map((n) => randomBatch(random, 2, [n, 3, 2, 2], 5));

  it('matches the two-pass float64 reference over several batches', () => {
    const acc = new CovarianceAccumulator(2, 3);
    const shift = channelMeans(batches[0]!);
    assert.ok(shift.ok);
    for (const b of batches) acc.addBatch(referenceMoments(b, shift.value));
    const stats = finalized(acc);
    const ref = referenceStatistics(batches);
    assert.equal(stats.count, ref.count);
    assert.ok(maxAbsDifference(stats.mean, ref.mean) < 1e-12, 'mean');
    assert.ok(covarianceError(stats.covariance, ref.covariance) < 1e-12, 'covariance');
    assert.ok(maxAbsDifference(stats.correlation, ref.correlation) < 1e-12, 'correlation');
  });

  it('rebases batches taken about another shift exactly', () => {
    const acc = new CovarianceAccumulator(2, 3);
    const shifts = [
      new Float64Array(6).fill(5),
      new Float64Array(6).fill(0),
      new Float64Array(6).fill(-2),
    ];
    batches.forEach((b, i) => acc.addBatch(referenceMoments(b, shifts[i]!)));
    const ref = referenceStatistics(batches);
    assert.ok(covarianceError(finalized(acc).covariance, ref.covariance) < 1e-12);
    const m = referenceMoments(batches[0]!, shifts[0]!);
    const moved = rebaseMoments(
      { ...m, sum: Float64Array.from(m.sum), gram: Float64Array.from(m.gram) },
      shifts[1]!,
    );
    const direct = referenceMoments(batches[0]!, shifts[1]!);
    assert.ok(maxAbsDifference(moved.gram, direct.gram) < 1e-9);
  });

  it('combines shards into the one-pass result', () => {
    const one = new CovarianceAccumulator(2, 3);
    const a = new CovarianceAccumulator(2, 3);
    const b = new CovarianceAccumulator(2, 3);
    const empty = new CovarianceAccumulator(2, 3);
    const s0 = channelMeans(batches[0]!);
    const s2 = channelMeans(batches[2]!);
    assert.ok(s0.ok && s2.ok);
    for (const batch of batches) one.addBatch(referenceMoments(batch, s0.value));
    a.addBatch(referenceMoments(batches[0]!, s0.value));
    a.addBatch(referenceMoments(batches[1]!, s0.value));
    b.addBatch(referenceMoments(batches[2]!, s2.value));
    assert.ok(empty.combine(a).ok && empty.combine(b).ok);
    const x = finalized(empty);
    const y = finalized(one);
    assert.equal(x.count, y.count);
    assert.ok(maxAbsDifference(x.mean, y.mean) < 1e-12);
    assert.ok(covarianceError(x.covariance, y.covariance) < 1e-12);
  });

  it('gives a dead and a constant channel zero correlation rows, never NaN', () => {
    const dims = [6, 2];
    const model0 = {
      dims,
      data: Float32Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 0 : i * 0.37)),
    };
    const model1 = {
      dims,
      data: Float32Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 3.7 : Math.sin(i))),
    };
    const batch = [model0, model1];
    const shift = channelMeans(batch);
    assert.ok(shift.ok);
    const acc = new CovarianceAccumulator(2, 2);
    acc.addBatch(referenceMoments(batch, Float64Array.from(shift.value, Math.fround)));
    const { correlation } = finalized(acc);
    assert.ok(correlation.every(Number.isFinite));
    for (const dead of [0, 2]) {
      for (let j = 0; j < 4; j++) {
        assert.equal(correlation[dead * 4 + j], 0);
        assert.equal(correlation[j * 4 + dead], 0);
      }
    }
    assert.ok(Math.abs(correlation[1 * 4 + 1]! - 1) < 1e-12);
  });

  it('EXPECTED FAILURE - finalize with no samples', () => {
    const result = new CovarianceAccumulator(2, 3).finalize();
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.reason === 'bad-statistics');
    assert.match(result.ok ? '' : result.message, /at least one sample/);
  });

  it('EXPECTED FAILURE - combining accumulators of different widths', () => {
    const result = new CovarianceAccumulator(2, 3).combine(new CovarianceAccumulator(2, 4));
    assert.ok(!result.ok);
    assert.equal(result.message, 'Expected statistics of 2 models x 3 channels, got 2 x 4');
  });

  it('EXPECTED FAILURE - a state whose arrays do not fit K and C', () => {
    const result = CovarianceAccumulator.fromState({
      numModels: 2,
      width: 2,
      count: 3,
      shift: new Float64Array(4),
      sum: new Float64Array(4),
      gram: new Float64Array(15),
    });
    assert.ok(!result.ok);
    assert.match(result.message, /got 4, 4 and 15/);
  });
});

describe('correlationFromCovariance', () => {
  it('divides by the product of standard deviations', () => {
    const covariance = Float64Array.from([4, 2, -3, 2, 9, 0, -3, 0, 1]);
    const expected = [1, 2 / 6, -3 / 2, 2 / 6, 1, 0, -3 / 2, 0, 1];
    assert.deepEqual([...correlationFromCovariance(covariance, 3)], expected);
  });

  it('gives a zero-variance channel a zero row and column, its own diagonal included', () => {
    const covariance = Float64Array.from([1, 0, 0.5, 0, 0, 0, 0.5, 0, 4]);
    assert.deepEqual(
      [...correlationFromCovariance(covariance, 3)],
      [1, 0, 0.25, 0, 0, 0, 0.25, 0, 1],
    );
  });

  it('propagates NaN: a NaN covariance entry, and a negative variance (its sqrt is NaN)', () => {
    const withNan = correlationFromCovariance(Float64Array.from([1, NaN, NaN, 1]), 2);
    assert.deepEqual([...withNan], [1, NaN, NaN, 1]);
    const negative = correlationFromCovariance(Float64Array.from([1, 0.5, 0.5, -1e-20]), 2);
    assert.deepEqual([...negative], [1, NaN, NaN, NaN]);
  });

  it('clamps tiny denominators to 1e-7', () => {
    const covariance = Float64Array.from([1e-16, 1e-15, 1e-15, 1e-16]);
    assert.equal(correlationFromCovariance(covariance, 2)[1], 1e-15 / 1e-7);
  });

  it('finalize clamps a variance that rounding made negative to 0, so R stays finite', () => {
    // Channel 0: 2 samples about shift 0 with sum 2 and a sum of squares just under 2, so
    // E[x^2] - E[x]^2 = -5e-13; its covariance with channel 1 is exactly 0.
    const acc = CovarianceAccumulator.fromState({
      numModels: 1,
      width: 2,
      count: 2,
      shift: new Float64Array(2),
      sum: Float64Array.from([2, 1]),
      gram: Float64Array.from([2 - 1e-12, 1, 1, 8.5]),
    });
    assert.ok(acc.ok);
    const { covariance, correlation } = finalized(acc.value);
    assert.equal(covariance[0], 0);
    assert.deepEqual([...correlation], [0, 0, 0, 1]);
  });

  it('EXPECTED FAILURE - a covariance that is not size x size is our bug: it throws', () => {
    assert.throws(
      () => correlationFromCovariance(new Float64Array(5), 2),
      /^RangeError: covariance has 5 entries, expected 2 x 2$/,
    );
  });
});
