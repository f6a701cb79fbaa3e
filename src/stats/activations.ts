/** @file Per-channel means of the K models' activations at one feature site (the Gram shift). */
import { fail, ok, type Result } from '../errors.js';
import { activationLayout, type ActivationBatch } from '../tensor/activations.js';

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
  if (typeof layout === 'string') return fail('bad-shape', layout);
  const { width, batch, spatial, count } = layout;
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
