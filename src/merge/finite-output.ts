/** @file The last check before a merged model leaves the pipeline: every float weight must be finite. */
import { fail, ok, type Result } from '../errors.js';
import type { Normalization } from '../data/dataset.js';
import { describeNonFinite, findNonFiniteWeight, type Model } from '../onnx/model.js';

/**
 * How far from 0 a normalised input may be before the merge statistics of a float32 network
 * become suspect: ordinary normalisations give |x| of a few units, 1e4 is already absurd, and
 * the squares summed into Gram matrices overflow float32 (3.4e38) from about 1e17 on.
 */
const SUSPICIOUS_INPUT = 1e4;

/** The largest |(pixel / 255 - mean) / std| over pixels in [0, 1] and every channel. */
export function largestNormalizedInput(normalization: Normalization): number {
  const means = typeof normalization.mean === 'number' ? [normalization.mean] : normalization.mean;
  const stds = typeof normalization.std === 'number' ? [normalization.std] : normalization.std;
  let largest = 0;
  for (let c = 0; c < Math.max(means.length, stds.length); c++) {
    const m = means[Math.min(c, means.length - 1)] ?? 0;
    const s = stds[Math.min(c, stds.length - 1)] ?? 1;
    largest = Math.max(largest, Math.abs(m) / s, Math.abs(1 - m) / s);
  }
  return largest;
}

/**
 * Fails when a float initializer of the merged model holds NaN or ±Infinity, naming the first
 * such tensor and the likely cause. The sources were checked finite before merging, so a
 * non-finite merged weight comes from statistics that overflowed: almost always inputs
 * normalised far out of range (a tiny std), otherwise activations too large for float32.
 * Without this check such a model was written and exited 0, then scored 0.0.
 */
export function checkMergedWeightsFinite(model: Model, normalization: Normalization): Result<void> {
  const bad = findNonFiniteWeight(model);
  if (bad === undefined) return ok(undefined);
  const largest = largestNormalizedInput(normalization);
  const cause =
    largest > SUSPICIOUS_INPUT
      ? `the normalised inputs reach ${largest.toExponential(1)} (mean ${String(normalization.mean)}, std ${String(normalization.std)}): check --mean and --std, or the preprocessing stored in the models`
      : "the source models' activations on this data overflowed float32 in the merge statistics";
  return fail(
    'bad-statistics',
    `Merged weight '${bad.name}' has ${describeNonFinite(bad)}, so no merged model is produced; likely cause: ${cause}.`,
  );
}
