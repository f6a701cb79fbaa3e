/** @file Function-preserving reparametrisation: randomly permute every mergeable space's channels. */
import { fail, ok, type Result } from '../errors.js';
import { analyzeGraph } from '../graph/analyze.js';
import { analyzeSpaces } from '../graph/spaces.js';
import type { Model } from '../onnx/model.js';
import { Random } from '../tensor/random.js';
import { applyTransforms } from './apply.js';
import { permutationTransform, type SpaceTransform } from './transform.js';

/**
 * A model computing the same function as `model` with the channels of every non-fixed space
 * shuffled (seeded). Returns the permutations too: channel c of space s in the result is
 * channel perm[c] of the original. Exactness tests merge (A, permute(A)) back to A.
 */
export function permuteChannels(
  model: Model,
  seed: number,
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
    const perm = random.permutation(space.width);
    permutations.set(space.id, perm);
    transforms.set(space.id, permutationTransform(perm));
  }
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
