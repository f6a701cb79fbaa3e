/** @file Test helpers of the correction tests: capture intermediate values with onnxruntime and take their per-channel moments in float64. */
import { batches, type Dataset, type Normalization } from '../../src/data/dataset.js';
import type { Model } from '../../src/onnx/model.js';
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
