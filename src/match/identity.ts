/** @file Weight averaging: merge feature i of every model with feature i of the others, no alignment. */
import { fail, ok, type Result } from '../errors.js';
import { checkMatchArguments, type Matcher, type Matching } from './types.js';

/**
 * Weight averaging (the reference's `match_tensors_identity`): U = [I; ...; I], so merged
 * feature i averages {0_i, 1_i, ..., (K-1)_i}. The correlation is only checked, never used.
 * `mergedWidth` must be n (alpha and beta are not used).
 */
export const weightAverageMatch: Matcher = (correlation, numModels, width, options) => {
  const checked = checkMatchArguments(correlation, numModels, width, options);
  if (!checked.ok) return checked;
  return weightAverageMatching(numModels, width, checked.value.mergedWidth);
};

/**
 * The weight-averaging matching itself, which needs no statistics: the merge pipeline calls it
 * directly and skips the (Kn)^2 correlation, the dominant memory of a wide merge.
 * `mergedWidth` (default n) must be n.
 */
export function weightAverageMatching(
  numModels: number,
  width: number,
  mergedWidth = width,
): Result<Matching> {
  if (mergedWidth !== width) {
    return fail(
      'bad-argument',
      `Expected --merged-width to be ${width} (the per-model width) for wavg, got ${mergedWidth}`,
    );
  }
  const groups: number[][] = [];
  for (let i = 0; i < width; i++) {
    const group: number[] = [];
    for (let k = 0; k < numModels; k++) group.push(k * width + i);
    groups.push(group);
  }
  return ok({
    numModels,
    width,
    mergedWidth,
    groups,
    sameModelMerges: 0,
    crossModelMerges: (numModels - 1) * width,
  });
}
