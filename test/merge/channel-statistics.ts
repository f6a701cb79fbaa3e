/** @file Test helpers of the correction tests: capture intermediate values with onnxruntime and take their per-channel moments in float64. */
import { batches, type Dataset, type Normalization } from '../../src/data/dataset.js';
import assert from 'node:assert/strict';
import type { Model, Node } from '../../src/onnx/model.js';
import { createSession, withCapturedOutputs } from '../../src/runtime/session.js';
import type { Tensor } from '../../src/onnx/tensor.js';

/** The whole dataset as one normalised input batch [N, C, H, W]. */
export function oneBatch(data: Dataset, normalization: Normalization): Tensor<'float32'> {
  const pass = batches(data, { batchSize: data.count, normalization });
  if (!pass.ok) throw new Error(pass.message);
  const [batch] = [...pass.value];
  return {
    dtype: 'float32',
    dims: [batch!.size, data.channels, data.height, data.width],
    data: batch!.input,
  };
}

/** Runs `model` as it is (a plain forward pass) on `input` and returns the named values. */
export async function capture(
  model: Model,
  input: Tensor<'float32'>,
  names: readonly string[],
): Promise<Record<string, Tensor<'float32'>>> {
  const session = await createSession(withCapturedOutputs(model, names), { threads: 2 });
  if (!session.ok) throw new Error(session.message);
  try {
    return await session.value.run({ [session.value.inputNames[0]!]: input }, names);
  } finally {
    await session.value.release();
  }
}

/** Per-channel mean and population variance of a [N, C, ...spatial] tensor, in float64. */
export function channelMoments(tensor: Tensor<'float32'>): {
  mean: Float64Array;
  variance: Float64Array;
  count: number;
} {
  const [batch, channels] = tensor.dims as [number, number];
  const spatial = tensor.dims.slice(2).reduce((a, d) => a * d, 1);
  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  const count = batch * spatial;
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let n = 0; n < batch; n++)
      for (let i = 0; i < spatial; i++) sum += tensor.data[(n * channels + c) * spatial + i]!;
    const m = sum / count;
    let squares = 0;
    for (let n = 0; n < batch; n++)
      for (let i = 0; i < spatial; i++) {
        const d = tensor.data[(n * channels + c) * spatial + i]! - m;
        squares += d * d;
      }
    mean[c] = m;
    variance[c] = squares / count;
  }
  return { mean, variance, count };
}

/** The largest of |actual - expected| / (|expected| + floor) over the channels, and where. */
export function worstRelative(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  floor: number,
): { error: number; channel: number } {
  let worst = { error: 0, channel: -1 };
  for (let c = 0; c < expected.length; c++) {
    const error = Math.abs(actual[c]! - expected[c]!) / (Math.abs(expected[c]!) + floor);
    if (!(error <= worst.error)) worst = { error, channel: c };
  }
  return worst;
}

export const floats = (model: Model, name: string): Float32Array =>
  (model.graph.initializers.get(name) as Tensor<'float32'>).data;

/**
 * The merged model with each BN's running variance taken back to the biased batch variance
 * (times (P - 1) / P, P values per channel): the normalisation the reset's pass used, as a BN
 * in PyTorch's train mode divides by the biased variance and records the unbiased one.
 */
export function withBiasedVariances(
  model: Model,
  bnNodes: readonly Node[],
  counts: number[],
): Model {
  const initializers = new Map(model.graph.initializers);
  bnNodes.forEach((node, i) => {
    const p = counts[i]!;
    const unbiased = floats(model, node.inputs[4]!);
    initializers.set(node.inputs[4]!, {
      dtype: 'float32',
      dims: [unbiased.length],
      data: unbiased.map((v) => (v * (p - 1)) / p),
    });
  });
  return { ...model, graph: { ...model.graph, initializers } };
}

/**
 * Checks every BN's running statistics in `merged` against the batch statistics of its input in
 * a plain pass of `run` on `input`: the mean to within `tolerance` of the channel's std, the variance to within
 * `tolerance` relative. Returns P per BN.
 */
export async function checkAgainstPass(
  merged: Model,
  run: Model,
  input: Tensor<'float32'>,
  bnNodes: readonly Node[],
  tolerance: number,
  what: string,
): Promise<number[]> {
  const captured = await capture(
    run,
    input,
    bnNodes.map((n) => n.inputs[0]!),
  );
  return bnNodes.map((node) => {
    const { mean, variance, count } = channelMoments(captured[node.inputs[0]!]!);
    const unbiased = variance.map((v) => (v * count) / (count - 1));
    const runningMean = floats(merged, node.inputs[3]!);
    const runningVariance = floats(merged, node.inputs[4]!);
    let meanError = { error: 0, channel: -1 };
    for (let c = 0; c < mean.length; c++) {
      const error = Math.abs(runningMean[c]! - mean[c]!) / Math.sqrt(variance[c]! + 1e-12);
      if (!(error <= meanError.error)) meanError = { error, channel: c };
    }
    const varianceError = worstRelative(runningVariance, unbiased, 1e-12);
    assert.ok(
      meanError.error < tolerance,
      `${what}, ${node.name}: running mean of channel ${meanError.channel} is ${runningMean[meanError.channel]}, the batch mean ${mean[meanError.channel]}`,
    );
    assert.ok(
      varianceError.error < tolerance,
      `${what}, ${node.name}: running variance of channel ${varianceError.channel} is ${runningVariance[varianceError.channel]}, the unbiased batch variance ${unbiased[varianceError.channel]}`,
    );
    return count;
  });
}
