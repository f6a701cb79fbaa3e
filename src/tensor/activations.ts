/** @file The shape of K models' activations at one feature site: `[N, C, ...spatial]`, read as C x P. */

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
 * The layout of K >= 1 activation tensors that share one `[N, C, ...spatial]` shape and each
 * hold exactly that many values, or what is wrong with them: the message of a 'bad-shape'
 * Failure, which the caller builds (this leaf module knows no `Result`).
 */
export function activationLayout(batches: readonly ActivationBatch[]): ActivationLayout | string {
  const first = batches[0];
  if (first === undefined) return 'Expected activations of at least one model, got none';
  const dims = first.dims;
  if (dims.length < 2)
    return `Expected activations of rank >= 2 ([N, C, ...]), got [${dims.join(', ')}]`;
  for (const [k, b] of batches.entries()) {
    if (b.dims.length !== dims.length || b.dims.some((d, i) => d !== dims[i]))
      return `Expected model ${k}'s activations to have shape [${dims.join(', ')}] like model 0, got [${b.dims.join(', ')}]`;
    const size = dims.reduce((a, d) => a * d, 1);
    if (b.data.length !== size)
      return `Expected ${size} values in model ${k}'s activations, got ${b.data.length}`;
  }
  const batch = dims[0]!;
  const width = dims[1]!;
  const spatial = dims.slice(2).reduce((a, d) => a * d, 1);
  return {
    numModels: batches.length,
    width,
    batch,
    spatial,
    count: batch * spatial,
    dims: [...dims],
  };
}
