/** @file The Permute baseline: align every model to model 0 by an optimal one-to-one matching. */
import { fail, ok } from '../errors.js';
import { solveAssignment } from './assignment.js';
import { checkMatchArguments, type Matcher } from './types.js';

/**
 * Permute ("Git Re-Basin" on activations): for each model k > 0, the permutation pi_k that
 * maximises sum_i R[0_i, k_pi_k(i)], solved exactly as a linear assignment; merged feature i
 * averages {0_i, 1_pi_1(i), ..., (K-1)_pi_{K-1}(i)}. Like the reference's
 * `match_tensors_permute`, merged feature i follows model 0's feature i.
 *
 * A -Infinity correlation is replaced by a finite value low enough that an assignment avoiding
 * it always wins when one exists. `mergedWidth` must be n (alpha and beta are not used).
 * O(K n^3) time.
 */
export const permuteMatch: Matcher = (correlation, numModels, width, options) => {
  const checked = checkMatchArguments(correlation, numModels, width, options);
  if (!checked.ok) return checked;
  const { total, mergedWidth } = checked.value;
  if (mergedWidth !== width) {
    return fail(
      'bad-argument',
      `Expected --merged-width to be ${width} (the per-model width) for permute, got ${mergedWidth}`,
    );
  }
  const n = width;
  const groups: number[][] = [];
  for (let i = 0; i < n; i++) groups.push([i]);
  const cost = new Float64Array(n * n); // [n, n]: rows model 0, columns model k
  for (let k = 1; k < numModels; k++) {
    let lowest = Infinity;
    let highest = -Infinity;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const r = correlation[i * total + k * n + j]!;
        if (r > -Infinity) {
          lowest = Math.min(lowest, r);
          highest = Math.max(highest, r);
        }
      }
    }
    // Any assignment using one more forbidden pair scores below any using one fewer.
    const forbidden = lowest === Infinity ? 0 : n * (lowest - highest) + lowest - 1;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const r = correlation[i * total + k * n + j]!;
        cost[i * n + j] = -(r > -Infinity ? r : forbidden); // maximise R = minimise -R
      }
    }
    const columnOf = solveAssignment(cost, n);
    for (let i = 0; i < n; i++) groups[i]!.push(k * n + columnOf[i]!);
  }
  return ok({
    numModels,
    width,
    mergedWidth,
    groups,
    sameModelMerges: 0,
    crossModelMerges: (numModels - 1) * n,
  });
};
