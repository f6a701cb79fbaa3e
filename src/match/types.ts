/** @file The matcher contract: the {@link Matching} every matcher returns, and input checks. */
import { fail, ok, type Result } from '../errors.js';

/**
 * How K models' features (n each) collapse into m merged features.
 *
 * Original features are numbered model by model: model k's feature j is `k * width + j`, so
 * indices run over [0, K*n). Every original feature belongs to exactly one group.
 *
 * As matrices (ALGORITHM.md): the unmerge U in {0,1}^{Kn x m} has U[f, c] = 1 iff feature f is
 * in group c, and the merge M = (U D^-1)^T in R^{m x Kn}, D = diag(column sums of U), averages
 * each group. merge/transform.ts builds their per-model blocks M_k (m x n) and U_k (n x m).
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
 *   to join only when no other choice is left; NaN and `+Infinity` are rejected. The statistics
 *   give it (`correlationFromCovariance` in stats/covariance.ts).
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
