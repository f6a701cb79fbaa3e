/** @file The matcher contract: the {@link Matching} every matcher returns, its merge/unmerge matrices, and input checks. */
import { fail, ok, type Result } from '../errors.js';

/**
 * How K models' features (n each) collapse into m merged features.
 *
 * Original features are numbered model by model: model k's feature j is `k * width + j`, so
 * indices run over [0, K*n). Every original feature belongs to exactly one group.
 */
export interface Matching {
  /** K, the number of models merged. */
  numModels: number;
  /** n, the number of features per model. */
  width: number;
  /** m, the number of merged features (= `groups.length`). */
  mergedWidth: number;
  /**
   * Per merged feature c (the c-th column of the unmerge matrix U), the ascending original
   * feature indices that it averages. Groups are ordered by their lowest member, which is the
   * order of the reference implementation's unmerge columns.
   */
  groups: number[][];
  /** Joins of two groups of the same origin model (ZipIt!'s within-model merges). */
  sameModelMerges: number;
  /** Joins of two groups of different origin models. */
  crossModelMerges: number;
}

/**
 * Tuning of a matcher. `alpha` and `beta` are the paper's names (ZipIt!, Section 4.3); matchers
 * without these hyper-parameters ignore them.
 */
export interface MatchOptions {
  /** Repeated-matching factor in [0, 1]: a joined group's similarity is alpha * min(...). */
  alpha: number;
  /** Same-model budget factor in [0, 1]: each model may do floor(floor((Kn - m) / K) * beta) same-model joins. */
  beta: number;
  /** m, the number of merged features; defaults to the per-model width n. */
  mergedWidth?: number;
}

/** The reference's defaults (match_tensors_zipit): alpha 0.3, beta 0.125, a full K-to-1 merge. */
export const DEFAULT_MATCH_OPTIONS: Readonly<MatchOptions> = Object.freeze({
  alpha: 0.3,
  beta: 0.125,
});

/**
 * One contract for every matcher.
 *
 * @param correlation - [Kn, Kn] row-major feature correlation, model 0's features first. Only
 *   the upper triangle (row < column) is read; the diagonal is ignored. `-Infinity` marks a pair
 *   to join only when no other choice is left; NaN and `+Infinity` are rejected.
 * @param numModels - K.
 * @param width - n, features per model.
 * @returns the {@link Matching}, or a Failure for inconsistent sizes or out-of-range options.
 */
export type Matcher = (
  correlation: Float64Array,
  numModels: number,
  width: number,
  options: MatchOptions,
) => Result<Matching>;

/**
 * The merge matrix M = (U D^-1)^T, [m, Kn] row-major: row c holds 1/|group c| at the columns
 * of group c's members, so `M @ features` averages each group.
 *
 * NOTE: exact averages; the reference divides by (|group| + 1e-5), which shrinks every merged
 * weight by about 1e-5 relative for no stated reason.
 */
export function mergeMatrix(matching: Matching): Float64Array {
  const total = matching.numModels * matching.width;
  const merge = new Float64Array(matching.mergedWidth * total); // [m, Kn]
  matching.groups.forEach((group, c) => {
    for (const feature of group) merge[c * total + feature] = 1 / group.length;
  });
  return merge;
}

/**
 * The unmerge matrix U, [Kn, m] row-major with 0/1 entries: U[f, c] = 1 iff original feature f
 * is in group c, so `U @ merged` copies each merged feature back to its members.
 */
export function unmergeMatrix(matching: Matching): Float64Array {
  const m = matching.mergedWidth;
  const unmerge = new Float64Array(matching.numModels * matching.width * m); // [Kn, m]
  matching.groups.forEach((group, c) => {
    for (const feature of group) unmerge[feature * m + c] = 1;
  });
  return unmerge;
}

/**
 * Model k's block M_k of the merge matrix, [m, n] row-major: M = [M_0 ... M_{K-1}], so the
 * merged producer weights are sum_k M_k W_k.
 */
export function modelMergeBlock(matching: Matching, model: number): Float64Array {
  checkModel(matching, model);
  const n = matching.width;
  const block = new Float64Array(matching.mergedWidth * n); // [m, n]
  matching.groups.forEach((group, c) => {
    for (const feature of group) {
      if (feature >= model * n && feature < (model + 1) * n) {
        block[c * n + (feature - model * n)] = 1 / group.length;
      }
    }
  });
  return block;
}

/**
 * Model k's block U_k of the unmerge matrix, [n, m] row-major with 0/1 entries:
 * U = [U_0; ...; U_{K-1}], so model k's consumer weights become W_k U_k.
 */
export function modelUnmergeBlock(matching: Matching, model: number): Float64Array {
  checkModel(matching, model);
  const n = matching.width;
  const m = matching.mergedWidth;
  const block = new Float64Array(n * m); // [n, m]
  matching.groups.forEach((group, c) => {
    for (const feature of group) {
      if (feature >= model * n && feature < (model + 1) * n)
        block[(feature - model * n) * m + c] = 1;
    }
  });
  return block;
}

function checkModel(matching: Matching, model: number): void {
  if (!Number.isInteger(model) || model < 0 || model >= matching.numModels) {
    throw new RangeError(`model ${model} outside [0, ${matching.numModels})`);
  }
}

/**
 * Correlation from a covariance, [size, size] row-major in and out:
 * R_ij = C_ij / max(sqrt(C_ii) sqrt(C_jj), 1e-7).
 *
 * NOTE: the denominator multiplies the two standard deviations (not sqrt of the product) like
 * the reference's `compute_correlation`, so equal inputs give bit-equal correlations and the
 * greedy matcher breaks near-ties the same way. A dead channel (zero variance) gives a
 * correlation of 0 with everything instead of NaN; so does a slightly negative variance from
 * rounding in E[f^2] - E[f]^2, whose square root is NaN.
 */
export function correlationFromCovariance(covariance: Float64Array, size: number): Float64Array {
  if (covariance.length !== size * size) {
    throw new RangeError(`covariance has ${covariance.length} entries, expected ${size} x ${size}`);
  }
  const std = new Float64Array(size);
  for (let i = 0; i < size; i++) std[i] = Math.sqrt(covariance[i * size + i]!);
  const correlation = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    const si = std[i]!;
    const row = i * size;
    for (let j = 0; j < size; j++) {
      // Math.max propagates NaN, so a NaN std makes r NaN and is caught on the next line.
      const r = covariance[row + j]! / Math.max(si * std[j]!, 1e-7);
      correlation[row + j] = Number.isNaN(r) ? 0 : r;
    }
  }
  return correlation;
}

/** Checked sizes shared by all matchers. */
export interface MatchSizes {
  /** Kn. */
  total: number;
  /** m, after applying the default (n). */
  mergedWidth: number;
}

/**
 * `Expected --alpha to be in [0, 1], got 1.5`, or undefined when `value` is in range (NaN is
 * not). `shown` is what the user typed, when it differs from the parsed `value`.
 */
export function unitIntervalProblem(
  name: string,
  value: number,
  shown: unknown = value,
): string | undefined {
  return value >= 0 && value <= 1
    ? undefined
    : `Expected --${name} to be in [0, 1], got ${String(shown)}`;
}

/**
 * Validates a matcher's arguments (the {@link Matcher} contract) once for all matchers:
 * sizes, option ranges, and finiteness of the correlation's upper triangle.
 */
export function checkMatchArguments(
  correlation: Float64Array,
  numModels: number,
  width: number,
  options: MatchOptions,
): Result<MatchSizes> {
  if (!Number.isInteger(numModels) || numModels < 1) {
    return fail(
      'bad-argument',
      `Expected the number of models to be a positive integer, got ${numModels}`,
    );
  }
  if (!Number.isInteger(width) || width < 1) {
    return fail(
      'bad-argument',
      `Expected the feature width to be a positive integer, got ${width}`,
    );
  }
  const total = numModels * width;
  if (correlation.length !== total * total) {
    return fail(
      'bad-shape',
      `Expected a correlation matrix of ${numModels} x ${width} = ${total} features ` +
        `(${total * total} entries), got ${correlation.length} entries`,
    );
  }
  const problem =
    unitIntervalProblem('alpha', options.alpha) ?? unitIntervalProblem('beta', options.beta);
  if (problem !== undefined) return fail('bad-argument', problem);
  const mergedWidth = options.mergedWidth ?? width;
  if (!Number.isInteger(mergedWidth) || mergedWidth < 1 || mergedWidth > total) {
    return fail(
      'bad-argument',
      `Expected --merged-width to be an integer in [1, ${total}], got ${mergedWidth}`,
    );
  }
  for (let i = 0; i < total; i++) {
    for (let j = i + 1; j < total; j++) {
      const r = correlation[i * total + j]!;
      // -Infinity is allowed: it marks a pair that may never be joined directly.
      if (Number.isNaN(r) || r === Infinity) {
        return fail(
          'bad-statistics',
          `Expected finite correlations, got ${r} between features ${i} and ${j}; ` +
            'build the correlation with correlationFromCovariance',
        );
      }
    }
  }
  return ok({ total, mergedWidth });
}
