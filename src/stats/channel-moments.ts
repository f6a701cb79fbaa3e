/** @file Per-channel mean and variance, streamed over batches in float64 (for REPAIR targets). */

/**
 * Streams per-channel first and second moments of `[N, C, ...spatial]` tensors.
 * NOTE: sums are taken about the first batch's means (a shift) in float64, so a channel
 * with a large mean keeps its variance digits.
 */
export class ChannelMoments {
  private count = 0;
  private shift: Float64Array | undefined;
  private readonly sum: Float64Array;
  private readonly sumSquares: Float64Array;

  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
    this.sumSquares = new Float64Array(channels);
  }

  /** Adds one batch; `offset` and the constructor's width select a channel range of the tensor. */
  add(dims: readonly number[], data: Float32Array, offset = 0): void {
    const batch = dims[0]!;
    const total = dims[1]!;
    let spatial = 1;
    for (let i = 2; i < dims.length; i++) spatial *= dims[i]!;
    if (this.shift === undefined) {
      this.shift = new Float64Array(this.channels);
      for (let c = 0; c < this.channels; c++) {
        let s = 0;
        for (let n = 0; n < batch; n++) {
          const base = (n * total + offset + c) * spatial;
          for (let i = 0; i < spatial; i++) s += data[base + i]!;
        }
        this.shift[c] = s / (batch * spatial);
      }
    }
    for (let c = 0; c < this.channels; c++) {
      const shift = this.shift[c]!;
      let s = 0;
      let q = 0;
      for (let n = 0; n < batch; n++) {
        const base = (n * total + offset + c) * spatial;
        for (let i = 0; i < spatial; i++) {
          const v = data[base + i]! - shift;
          if (v === v) {
            s += v;
            q += v * v;
          }
        }
      }
      this.sum[c]! += s;
      this.sumSquares[c]! += q;
    }
    this.count += batch * spatial;
  }

  /** Means and (population) variances per channel. */
  finalize(): { mean: Float64Array; variance: Float64Array } {
    const mean = new Float64Array(this.channels);
    const variance = new Float64Array(this.channels);
    const n = Math.max(1, this.count);
    for (let c = 0; c < this.channels; c++) {
      const m = this.sum[c]! / n;
      mean[c] = m + (this.shift?.[c] ?? 0);
      variance[c] = Math.max(0, this.sumSquares[c]! / n - m * m);
    }
    return { mean, variance };
  }
}
