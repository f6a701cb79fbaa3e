/**
 * @file Matching a space whose channels come in groups that must stay apart (attention heads):
 * each group is matched on its own, and the merged features keep the groups' order.
 */
import { fail, ok, type Result } from '../errors.js';
import type { Matcher, Matching, MatchOptions } from './types.js';

/**
 * Runs `matcher` on each of `groups` consecutive channel blocks of a [Kn, Kn] correlation
 * separately, on the K * (n / groups) features of that block, and joins the results: merged
 * features of block g come g-th, n / groups of them. That keeps a head's merged channels in its
 * head, so the merged model splits its channels into heads as the sources did.
 *
 * NOTE: ZipIt! on the whole space could merge more features in one head than in another (its
 * greedy picks the best pairs anywhere), leaving heads of unequal widths that a reshape into h
 * heads of d cannot hold; per block it reduces each head to d exactly.
 */
export function matchGrouped(
  matcher: Matcher,
  correlation: Float64Array,
  numModels: number,
  width: number,
  groups: number,
  options: MatchOptions,
): Result<Matching> {
  if (groups <= 1) return matcher(correlation, numModels, width, options);
  if (width % groups !== 0)
    return fail('bad-argument', `${width} channels do not split into ${groups} heads.`);
  if (options.mergedWidth !== undefined && options.mergedWidth !== width)
    return fail(
      'bad-argument',
      `A space split into ${groups} attention heads must keep its width ${width}; --merged-width cannot change it.`,
    );
  const block = width / groups;
  const total = numModels * width;
  const size = numModels * block;
  const merged: number[][] = [];
  let sameModelMerges = 0;
  let crossModelMerges = 0;
  for (let g = 0; g < groups; g++) {
    // Local feature k * block + j is global feature k * width + g * block + j.
    const global = Int32Array.from({ length: size }, (_, l) => {
      const k = Math.floor(l / block);
      return k * width + g * block + (l % block);
    });
    const sub = new Float64Array(size * size);
    for (let a = 0; a < size; a++)
      for (let b = 0; b < size; b++)
        sub[a * size + b] = correlation[global[a]! * total + global[b]!]!;
    const matched = matcher(sub, numModels, block, { alpha: options.alpha, beta: options.beta });
    if (!matched.ok) return fail(matched.reason, `Head ${g}: ${matched.message}`);
    for (const group of matched.value.groups) merged.push(group.map((l) => global[l]!));
    sameModelMerges += matched.value.sameModelMerges;
    crossModelMerges += matched.value.crossModelMerges;
  }
  return ok({
    numModels,
    width,
    mergedWidth: merged.length,
    groups: merged,
    sameModelMerges,
    crossModelMerges,
  });
}
