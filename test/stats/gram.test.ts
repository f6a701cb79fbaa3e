/** @file The onnxruntime Gram kernel + accumulator against the float64 reference. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Tensor } from '../../src/onnx/tensor.js';
import { accumulateBatch } from '../../src/merge/collect.js';
import { createGramKernel } from '../../src/runtime/gram.js';
import { CovarianceAccumulator, type Statistics } from '../../src/stats/covariance.js';
import type { ActivationBatch } from '../../src/tensor/activations.js';
import { Random } from '../../src/tensor/random.js';
import {
  covarianceError,
  maxAbsDifference,
  randomBatch,
  referenceStatistics,
} from './reference.js';

const kernel = createGramKernel();
after(() => kernel.release());

function asTensors(batch: readonly ActivationBatch[]): Tensor<'float32'>[] {
  return batch.map((a) => ({ dtype: 'float32', dims: a.dims, data: a.data }));
}

async function accumulate(batches: readonly (readonly ActivationBatch[])[]): Promise<Statistics> {
  const first = batches[0]![0]!;
  const acc = new CovarianceAccumulator(batches[0]!.length, first.dims[1]!);
  for (const batch of batches) {
    const added = await accumulateBatch(kernel, acc, asTensors(batch));
    assert.ok(added.ok, added.ok ? '' : added.message);
  }
  const stats = acc.finalize();
  assert.ok(stats.ok, stats.ok ? '' : stats.message);
  return stats.value;
}

function assertClose(
  stats: Statistics,
  batches: readonly (readonly ActivationBatch[])[],
  tolerance: number,
): void {
  const ref = referenceStatistics(batches);
  assert.equal(stats.count, ref.count);
  const meanScale = Math.max(...ref.mean.map(Math.abs), 1);
  assert.ok(maxAbsDifference(stats.mean, ref.mean) < tolerance * meanScale, 'mean');
  const covError = covarianceError(stats.covariance, ref.covariance);
  assert.ok(covError < tolerance, `covariance off by ${covError} of sqrt(C_ii C_jj)`);
  const corrError = maxAbsDifference(stats.correlation, ref.correlation);
  assert.ok(corrError < tolerance, `correlation off by ${corrError}`);
}

describe('Gram kernel on onnxruntime', () => {
  it('matches the float64 reference: K=2, NCHW, several batches', async () => {
    const random = new Random(1);
    const batches = [8, 8, 5].map((n) => randomBatch(random, 2, [n, 6, 4, 3], 2));
    assertClose(await accumulate(batches), batches, 1e-5);
  });

  it('matches the float64 reference: K=3, NCHW, both spatial layouts', async () => {
    const random = new Random(2);
    // 3x3 < 4 * 5 channels: the [C, P] Gemm; 6x6 >= 4 * 5: the per-sample batched MatMul.
    for (const side of [3, 6]) {
      const batches = [4, 4].map((n) => randomBatch(random, 3, [n, 5, side, side], -1));
      assertClose(await accumulate(batches), batches, 1e-5);
    }
  });

  it('matches the float64 reference: K=2 and K=3, NC', async () => {
    const random = new Random(3);
    for (const k of [2, 3]) {
      const batches = [32, 32, 17].map((n) => randomBatch(random, k, [n, 7], 4));
      assertClose(await accumulate(batches), batches, 1e-5);
    }
  });

  it('reads NaN activations as 0 (through the NaN-safe graph)', async () => {
    const random = new Random(4);
    for (const dims of [
      [4, 3],
      [4, 3, 2],
      [4, 3, 4, 4],
    ]) {
      const batches = [6, 6].map((n) => randomBatch(random, 2, [n, ...dims]));
      for (const i of [0, 17, 40, 71]) batches[1]![0]!.data[i] = Number.NaN;
      batches[0]![1]!.data[5] = Number.NaN;
      const stats = await accumulate(batches);
      assert.ok(stats.correlation.every(Number.isFinite));
      assertClose(stats, batches, 1e-5);
    }
  });

  it('gives a dead channel finite correlation with zero off-diagonal', async () => {
    const random = new Random(5);
    const batches = [6, 6].map((n) => randomBatch(random, 2, [n, 3, 2, 2]));
    for (const batch of batches) {
      for (let n = 0; n < batch[1]!.dims[0]!; n++)
        batch[1]!.data.fill(0, (n * 3 + 1) * 4, (n * 3 + 2) * 4);
    }
    const { correlation } = await accumulate(batches);
    assert.ok(correlation.every(Number.isFinite));
    const dead = 3 + 1;
    for (let j = 0; j < 6; j++) {
      assert.equal(correlation[dead * 6 + j], 0);
      assert.equal(correlation[j * 6 + dead], 0);
    }
  });

  it('keeps the variance of a channel with mean 1000 and std 1 (the shift)', async () => {
    const random = new Random(6);
    const batches = [0, 1, 2].map(() => randomBatch(random, 2, [64, 2, 8, 8]));
    for (const batch of batches) {
      for (let i = 0; i < batch[0]!.data.length; i++) {
        if (Math.floor(i / 64) % 2 === 0) batch[0]!.data[i] = 1000 + random.normal();
      }
    }
    const stats = await accumulate(batches);
    const ref = referenceStatistics(batches);
    const relative = Math.abs(stats.covariance[0]! - ref.covariance[0]!) / ref.covariance[0]!;
    assert.ok(Math.abs(ref.covariance[0]! - 1) < 0.05, 'the reference variance is about 1');
    assert.ok(relative < 1e-5, `variance off by ${relative} (relative)`);
    assertClose(stats, batches, 1e-5);

    // Without the shift, float32 E[x^2] - E[x]^2 at mean 1000 loses the variance entirely.
    const unshifted = await kernel.moments(asTensors(batches[0]!), new Float32Array(4));
    assert.ok(unshifted.ok);
    const { count, sum, gram } = unshifted.value;
    const naive = gram[0]! / count - (sum[0]! / count) ** 2;
    assert.ok(Math.abs(naive - ref.covariance[0]!) > 100 * relative, `naive variance ${naive}`);
  });

  it('EXPECTED FAILURE - activations of different shapes across models', async () => {
    const random = new Random(7);
    const [a] = randomBatch(random, 1, [2, 3, 2, 2]);
    const [b] = randomBatch(random, 1, [2, 4, 2, 2]);
    const result = await kernel.moments(asTensors([a!, b!]), new Float32Array(6));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-shape');
    assert.equal(
      result.message,
      "Expected model 1's activations to have shape [2, 3, 2, 2] like model 0, got [2, 4, 2, 2]",
    );
  });

  it('EXPECTED FAILURE - infinite activations', async () => {
    const random = new Random(8);
    const batch = randomBatch(random, 2, [2, 3, 2, 2]);
    batch[0]!.data[3] = Number.POSITIVE_INFINITY;
    const result = await kernel.moments(asTensors(batch), new Float32Array(6));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-statistics');
    assert.match(result.message, /^Expected finite activations, got infinite values/);
  });
});
