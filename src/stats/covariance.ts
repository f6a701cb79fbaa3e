/** @file Streaming first and second moments of K stacked models' features → mean, covariance, correlation. */
import { fail, ok, type Result } from '../errors.js';

/**
 * The moments of one batch, as a Gram kernel returns them, taken about `shift`:
 * `sum = Σ_p (f_p - shift)` and `gram = Σ_p (f_p - shift)(f_p - shift)^T` over the batch's
 * `count` samples f_p in R^{Kn} (Kn = K*C, model-major: model k's channel c is row k*C + c).
 * `gram` is Kn x Kn row-major. Float32 arrays are fine: they are added in float64.
 */
export interface BatchMoments {
  readonly count: number;
  readonly shift: ArrayLike<number>;
  readonly sum: ArrayLike<number>;
  readonly gram: ArrayLike<number>;
}

/**
 * The plain state of a {@link CovarianceAccumulator}, as files store it. `shift` (Kn),
 * `sum` (Kn) and `gram` (Kn x Kn, row-major) are the moments of all `count` samples about
 * `shift`; with `count` 0 all three are zeros and carry no information.
 */
export interface AccumulatorState {
  readonly numModels: number;
  readonly width: number;
  readonly count: number;
  readonly shift: Float64Array;
  readonly sum: Float64Array;
  readonly gram: Float64Array;
}

/**
 * The finished statistics of one feature space, over Kn = K*C stacked features (model-major).
 * `covariance` and `correlation` are Kn x Kn row-major and symmetric; `covariance` is the
 * population covariance E[ff^T] - E[f]E[f]^T.
 */
export interface Statistics {
  readonly numModels: number;
  readonly width: number;
  readonly count: number;
  readonly mean: Float64Array;
  readonly covariance: Float64Array;
  readonly correlation: Float64Array;
}

/** The floor of sqrt(C_ii C_jj) in the correlation, as in ZipIt!: dead channels stay finite. */
export const CORRELATION_EPSILON = 1e-7;

/**
 * Streams the statistics of one feature space over K models of width C each: count, and the
 * sum and Gram matrix of the stacked features about a fixed per-feature shift. Memory is
 * O((K*C)^2), independent of the number of samples.
 *
 * NOTE: the moments are kept about a shift (normally the first batch's channel means) rather
 * than about 0. E[ff^T] - E[f]E[f]^T loses about log10(mean^2 / variance) digits; a channel
 * with mean 1000 and std 1 would lose 6 of float32's 7 digits inside the kernel's float32
 * GEMM. About the shift, the GEMM sees values of the size of the std and nothing cancels.
 * Batches or shards taken about another shift are moved to this one exactly (in exact
 * arithmetic) by {@link rebaseMoments}; that is accurate in float64 while the shifts differ
 * by much less than 1e4 standard deviations, which holds for shifts that are means of the
 * same distribution.
 */
export class CovarianceAccumulator {
  /** Kn = K*C, the number of stacked features. */
  readonly size: number;
  private countValue = 0;
  private readonly shiftValue: Float64Array;
  private readonly sumValue: Float64Array;
  private readonly gramValue: Float64Array;

  /**
   * @param numModels K, the number of models stacked.
   * @param width C, the channels of each model at this site.
   */
  constructor(
    readonly numModels: number,
    readonly width: number,
  ) {
    if (!Number.isInteger(numModels) || numModels < 1 || !Number.isInteger(width) || width < 1) {
      throw new Error(`CovarianceAccumulator: bad numModels ${numModels} or width ${width}`);
    }
    this.size = numModels * width;
    this.shiftValue = new Float64Array(this.size);
    this.sumValue = new Float64Array(this.size);
    this.gramValue = new Float64Array(this.size * this.size);
  }

  /** An accumulator holding `state` (copied). Fails if the arrays do not fit K and C. */
  static fromState(state: AccumulatorState): Result<CovarianceAccumulator> {
    const { numModels, width, count } = state;
    if (!Number.isInteger(numModels) || numModels < 1 || !Number.isInteger(width) || width < 1) {
      return fail(
        'bad-statistics',
        `Expected positive integer numModels and width, got ${numModels} and ${width}`,
      );
    }
    if (!Number.isSafeInteger(count) || count < 0) {
      return fail('bad-statistics', `Expected a non-negative integer sample count, got ${count}`);
    }
    const size = numModels * width;
    if (
      state.shift.length !== size ||
      state.sum.length !== size ||
      state.gram.length !== size * size
    ) {
      return fail(
        'bad-statistics',
        `Expected shift, sum and gram of ${size}, ${size} and ${size * size} values, got ${state.shift.length}, ${state.sum.length} and ${state.gram.length}`,
      );
    }
    const accumulator = new CovarianceAccumulator(numModels, width);
    if (count > 0) {
      accumulator.countValue = count;
      accumulator.shiftValue.set(state.shift);
      accumulator.sumValue.set(state.sum);
      accumulator.gramValue.set(state.gram);
    }
    return ok(accumulator);
  }

  /** The number of samples (positions) added so far. */
  get count(): number {
    return this.countValue;
  }

  /**
   * The shift the moments are taken about, or undefined before the first batch (then any
   * shift will do; pass the batch's channel means for accuracy).
   */
  get shift(): Float64Array | undefined {
    return this.countValue > 0 ? this.shiftValue.slice() : undefined;
  }

  /** A copy of the state, for files and shards. */
  state(): AccumulatorState {
    return {
      numModels: this.numModels,
      width: this.width,
      count: this.countValue,
      shift: this.shiftValue.slice(),
      sum: this.sumValue.slice(),
      gram: this.gramValue.slice(),
    };
  }

  /** An independent copy. */
  clone(): CovarianceAccumulator {
    const copy = new CovarianceAccumulator(this.numModels, this.width);
    copy.addState(this.state());
    return copy;
  }

  /**
   * Adds one batch's moments. The first batch fixes the shift; later batches about another
   * shift are rebased onto it. Wrong array lengths are our bug (the kernel sized them), so
   * they throw.
   */
  addBatch(moments: BatchMoments): void {
    const n = this.size;
    if (moments.shift.length !== n || moments.sum.length !== n || moments.gram.length !== n * n) {
      throw new Error(
        `addBatch: expected shift/sum/gram of ${n}/${n}/${n * n} values, got ${moments.shift.length}/${moments.sum.length}/${moments.gram.length}`,
      );
    }
    if (!Number.isSafeInteger(moments.count) || moments.count < 0) {
      throw new Error(`addBatch: bad count ${moments.count}`);
    }
    this.addState({
      numModels: this.numModels,
      width: this.width,
      count: moments.count,
      shift: Float64Array.from(moments.shift),
      sum: Float64Array.from(moments.sum),
      gram: Float64Array.from(moments.gram),
    });
  }

  /**
   * Adds another shard's statistics (same K and C), as if its samples had been added here.
   * Fails, naming both shapes, when K or C differ.
   */
  combine(other: CovarianceAccumulator): Result<void> {
    if (other.numModels !== this.numModels || other.width !== this.width) {
      return fail(
        'bad-statistics',
        `Expected statistics of ${this.numModels} models x ${this.width} channels, got ${other.numModels} x ${other.width}`,
      );
    }
    this.addState(other.state());
    return ok(undefined);
  }

  /**
   * Mean, covariance and correlation ({@link correlationFromCovariance}). Fails when no
   * samples were added.
   *
   * NOTE: a covariance diagonal that rounding made slightly negative (a near-constant channel)
   * is clamped to 0, so sqrt stays real and R stays finite; a dead channel then has R = 0 in
   * its row and column, its diagonal included, as ZipIt!'s clamp gives.
   */
  finalize(): Result<Statistics> {
    const count = this.countValue;
    if (count === 0)
      return fail('bad-statistics', 'Expected at least one sample in the statistics, got none');
    const n = this.size;
    const shiftedMean = new Float64Array(n);
    const mean = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      shiftedMean[i] = this.sumValue[i]! / count;
      mean[i] = this.shiftValue[i]! + shiftedMean[i]!;
    }
    const covariance = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      const mi = shiftedMean[i]!;
      for (let j = 0; j < n; j++) {
        covariance[i * n + j] = this.gramValue[i * n + j]! / count - mi * shiftedMean[j]!;
      }
      if (covariance[i * n + i]! < 0) covariance[i * n + i] = 0;
    }
    const correlation = correlationFromCovariance(covariance, n);
    return ok({
      numModels: this.numModels,
      width: this.width,
      count,
      mean,
      covariance,
      correlation,
    });
  }

  private addState(state: AccumulatorState): void {
    if (state.count === 0) return;
    if (this.countValue === 0) {
      this.countValue = state.count;
      this.shiftValue.set(state.shift);
      this.sumValue.set(state.sum);
      this.gramValue.set(state.gram);
      return;
    }
    const { sum, gram } = rebaseMoments(state, this.shiftValue);
    this.countValue += state.count;
    for (let i = 0; i < sum.length; i++) this.sumValue[i]! += sum[i]!;
    for (let i = 0; i < gram.length; i++) this.gramValue[i]! += gram[i]!;
  }
}

/**
 * Correlation from a covariance, both [size, size] row-major:
 * R_ij = C_ij / max(sqrt(C_ii) sqrt(C_jj), {@link CORRELATION_EPSILON}).
 *
 * A zero-variance channel (dead, or constant over the data) has C_ii = 0 and, by
 * Cauchy-Schwarz, C_ij = 0 (exactly, when the accumulator's shift is the channel's constant):
 * the floor turns 0/0 into 0, so its whole row and column of R are 0, its own diagonal R_ii
 * included (not 1). The matchers then see it as uncorrelated with everything, itself too.
 *
 * NaN is not hidden: a NaN entry of C gives NaN in R, and so does a negative variance (its
 * square root is NaN); the matchers reject NaN. {@link CovarianceAccumulator.finalize} clamps a
 * variance that rounding made slightly negative to 0 before calling this.
 *
 * NOTE: the denominator multiplies the two standard deviations (not sqrt of the product) like
 * the reference's `compute_correlation`, so equal inputs give bit-equal correlations and the
 * greedy matcher breaks near-ties the same way.
 */
export function correlationFromCovariance(covariance: Float64Array, size: number): Float64Array {
  if (covariance.length !== size * size) {
    throw new RangeError(`covariance has ${covariance.length} entries, expected ${size} x ${size}`);
  }
  const std = new Float64Array(size);
  for (let i = 0; i < size; i++) std[i] = Math.sqrt(covariance[i * size + i]!);
  const correlation = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const k = i * size + j;
      // Math.max propagates NaN, so a NaN standard deviation makes R_ij NaN.
      correlation[k] = covariance[k]! / Math.max(std[i]! * std[j]!, CORRELATION_EPSILON);
    }
  }
  return correlation;
}

/**
 * The sum and Gram of `moments` taken about `to` instead of `moments.shift`. With
 * d = shift - to, x - to = (x - shift) + d, hence sum' = sum + count d and
 * gram' = gram + sum d^T + d sum^T + count d d^T. Returns the inputs when the shifts agree.
 */
export function rebaseMoments(
  moments: {
    readonly count: number;
    readonly shift: ArrayLike<number>;
    readonly sum: Float64Array;
    readonly gram: Float64Array;
  },
  to: ArrayLike<number>,
): { sum: Float64Array; gram: Float64Array } {
  const n = moments.sum.length;
  const d = new Float64Array(n);
  let same = true;
  for (let i = 0; i < n; i++) {
    d[i] = moments.shift[i]! - to[i]!;
    if (d[i] !== 0) same = false;
  }
  if (same) return { sum: moments.sum, gram: moments.gram };
  const { count, sum: oldSum, gram: oldGram } = moments;
  const sum = new Float64Array(n);
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    sum[i] = oldSum[i]! + count * d[i]!;
    for (let j = 0; j < n; j++) {
      const k = i * n + j;
      gram[k] = oldGram[k]! + oldSum[i]! * d[j]! + d[i]! * oldSum[j]! + count * d[i]! * d[j]!;
    }
  }
  return { sum, gram };
}
