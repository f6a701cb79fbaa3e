/** @file Layout checks and per-channel means of the K models' activations at one feature site. */
import { fail, ok, type Result } from '../errors.js';

/**
 * One model's activations for one batch, row-major: `[N, C, ...spatial]` (conv `[N, C, H, W]`,
 * linear `[N, C]`). Channel axis 1 is the feature axis; every other axis indexes a sample, so
 * the tensor reads as C x P with P = N * prod(spatial). Structurally an onnx float32 Tensor.
 */
export interface ActivationBatch {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** The shape shared by the K models' activations of one batch. */
export interface ActivationLayout {
  /** K, the number of models (one activation tensor each). */
  readonly numModels: number;
  /** C, channels per model. */
  readonly width: number;
  /** N, the batch axis. */
  readonly batch: number;
  /** prod(spatial); 1 for `[N, C]`. */
  readonly spatial: number;
  /** P = N * spatial, the samples this batch adds to the statistics. */
  readonly count: number;
  /** The common dims, `[N, C, ...spatial]`. */
  readonly dims: readonly number[];
}

/**
 * Checks that K >= 1 activation tensors share one `[N, C, ...spatial]` shape and that each
 * holds exactly that many values.
 */
export function activationLayout(batches: readonly ActivationBatch[]): Result<ActivationLayout> {
  const first = batches[0];
  if (first === undefined)
    return fail('bad-shape', 'Expected activations of at least one model, got none');
  const dims = first.dims;
  if (dims.length < 2) {
    return fail(
      'bad-shape',
      `Expected activations of rank >= 2 ([N, C, ...]), got [${dims.join(', ')}]`,
    );
  }
  for (const [k, b] of batches.entries()) {
    if (b.dims.length !== dims.length || b.dims.some((d, i) => d !== dims[i])) {
      return fail(
        'bad-shape',
        `Expected model ${k}'s activations to have shape [${dims.join(', ')}] like model 0, got [${b.dims.join(', ')}]`,
      );
    }
    const size = dims.reduce((a, d) => a * d, 1);
    if (b.data.length !== size) {
      return fail(
        'bad-shape',
        `Expected ${size} values in model ${k}'s activations, got ${b.data.length}`,
      );
    }
  }
  const batch = dims[0]!;
  const width = dims[1]!;
  const spatial = dims.slice(2).reduce((a, d) => a * d, 1);
  return ok({
    numModels: batches.length,
    width,
    batch,
    spatial,
    count: batch * spatial,
    dims: [...dims],
  });
}

/**
 * Per-channel means of the stacked activations (length K*C, model-major), in float64, with NaN
 * read as 0 as everywhere in the statistics.
 *
 * NOTE: used as the shift of the Gram accumulation (see `CovarianceAccumulator`). It is
 * summed in float64 so that a constant channel gets its value back exactly (P copies of a
 * float32 sum exactly in float64), which makes x - shift exactly 0 and the channel's variance
 * exactly 0 rather than rounding noise.
 */
export function channelMeans(batches: readonly ActivationBatch[]): Result<Float64Array> {
  const layout = activationLayout(batches);
  if (!layout.ok) return layout;
  const { width, batch, spatial, count } = layout.value;
  const means = new Float64Array(batches.length * width);
  for (const [k, b] of batches.entries()) {
    const data = b.data;
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < width; c++) {
        const start = (n * width + c) * spatial;
        let s = 0;
        for (let i = start; i < start + spatial; i++) {
          const v = data[i]!;
          if (v === v) s += v;
        }
        means[k * width + c]! += s;
      }
    }
  }
  for (let i = 0; i < means.length; i++) means[i] = means[i]! / count;
  return ok(means);
}
