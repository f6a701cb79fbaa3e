/** @file Function-preserving reparametrisation: randomly permute every mergeable space's channels. */
import { fail, ok, type Result } from '../errors.js';
import { analyzeGraph } from '../graph/analyze.js';
import { analyzeSpaces } from '../graph/spaces.js';
import type { Model } from '../onnx/model.js';
import { Random } from '../tensor/random.js';
import { applyTransforms } from './apply.js';
import { permutationTransform, type SpaceTransform } from './transform.js';

/**
 * A random permutation of `width` channels in `groups` consecutive blocks that keeps every
 * channel in its block (attention heads: a query's channel must stay in its head).
 */
function groupedPermutation(random: Random, width: number, groups: number): Int32Array {
  const block = width / groups;
  const perm = new Int32Array(width);
  for (let g = 0; g < groups; g++) {
    const inner = random.permutation(block);
    for (let j = 0; j < block; j++) perm[g * block + j] = g * block + inner[j]!;
  }
  return perm;
}

/**
 * A model computing the same function as `model` with the channels of every non-fixed space
 * shuffled (seeded). A space split into attention heads keeps each channel in its head; with
 * `heads: true` the heads of each attention are shuffled too, one order for its Q/K and V
 * spaces. Returns the permutations: channel c of space s in the result is channel perm[c] of
 * the original. Exactness tests merge (A, permute(A)) back to A.
 */
export function permuteChannels(
  model: Model,
  seed: number,
  options: { readonly heads?: boolean } = {},
): Result<{ model: Model; permutations: Map<number, Int32Array> }> {
  const graph = analyzeGraph(model);
  if (!graph.ok) return graph;
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) return spaces;
  const random = new Random(seed);
  const transforms = new Map<number, SpaceTransform>();
  const permutations = new Map<number, Int32Array>();
  for (const space of spaces.value.spaces) {
    if (space.kind === 'fixed') continue;
    const perm = groupedPermutation(random, space.width, space.groups ?? 1);
    permutations.set(space.id, perm);
  }
  if (options.heads === true)
    for (const { queryKey, value, inPlace } of spaces.value.attention) {
      if (inPlace === true) continue;
      const heads = spaces.value.spaces[queryKey]!.groups ?? 1;
      const order = random.permutation(heads);
      for (const id of [queryKey, value]) {
        const perm = permutations.get(id);
        if (perm === undefined) continue;
        const d = perm.length / heads;
        // Block g of the result is block order[g] of the original, shuffled as drawn.
        permutations.set(
          id,
          Int32Array.from(perm, (_, c) => {
            const g = Math.floor(c / d);
            return order[g]! * d + (perm[c]! % d);
          }),
        );
      }
    }
  for (const [id, perm] of permutations) transforms.set(id, permutationTransform(perm));
  if (permutations.size === 0)
    return fail('unsupported-model', 'The model has no mergeable space to permute.');
  const identityMaps = [
    new Map([...graph.value.model.graph.initializers.keys()].map((k) => [k, k])),
  ];
  return ok({
    model: applyTransforms([graph.value], identityMaps, spaces.value, transforms),
    permutations,
  });
}
