/**
 * @file Dual-space similarity (after MuDSC, Xu et al. CVPR 2024): the matching's similarity of
 * two features mixes their activation correlation with the cosine similarity of their weights.
 */
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace, SpaceAnalysis } from '../graph/spaces.js';
import type { Matching } from '../match/types.js';
import type { InitializerMaps } from './structure.js';
import { axisPositions, boundParams, channelSlices, gather } from './weight-matching.js';

/**
 * Per model k >= 1 (index k - 1): space id -> model k's channel for each of model 0's, the
 * coordinates in which a weight's other axes are read when comparing model k's features with
 * model 0's.
 */
export type Alignment = readonly ReadonlyMap<number, Int32Array>[];

/**
 * The alignment a permutation matching gives (merged feature c = {0_c, 1_pi_1(c), ...}, the
 * groups of the Permute baseline): per model k >= 1, pi_k for every matched space.
 */
export function alignmentFromPermutations(
  matchings: ReadonlyMap<number, Matching>,
  numModels: number,
): Alignment {
  const alignment: Map<number, Int32Array>[] = [];
  for (let k = 1; k < numModels; k++) {
    const perms = new Map<number, Int32Array>();
    for (const [id, matching] of matchings) {
      const n = matching.width;
      perms.set(
        id,
        Int32Array.from(matching.groups, (group) => group[k]! - k * n),
      );
    }
    alignment.push(perms);
  }
  return alignment;
}

/**
 * Per space in `spaces`, the [Kn, Kn] cosine similarity of the features' weights (model 0's
 * features first): feature f's weight vector is every weight slice on f, that is each bound
 * weight's values at f's positions along each of its axes on the space (a producer's rows, a
 * consumer's columns, BN's scale and shift), concatenated over the weights. A model k's other
 * axes are read through `alignment` (its matched channels in model 0's order), so that slices
 * of different models are comparable; within one model they are compared as they are.
 *
 * NOTE: MuDSC merges layer by layer and reads the previous layer's merged input. Here every
 * space is compared at once with its neighbours aligned by a permutation (Permute's, from the
 * same activations): all spaces are then independent, as ZipIt!'s matching is, at the price
 * of reading a one-to-one alignment where ZipIt! may merge within a model.
 *
 * NOTE: plain JS: a Gram of Kn slices of length L per weight axis, for ResNet-20 x1 (Kn = 128,
 * L <= 576) under 10 million multiply-adds per weight axis, about a second in all.
 */
export function weightSimilarities(
  graphs: readonly AnalyzedGraph[],
  maps: InitializerMaps,
  analysis: SpaceAnalysis,
  spaces: readonly FeatureSpace[],
  alignment: Alignment,
): Map<number, Float64Array> {
  const numModels = graphs.length;
  const params = boundParams(graphs, maps, analysis, spaces, false);
  const widths = new Map(analysis.spaces.map((s) => [s.id, s.width]));
  const identity = new Map<number, Int32Array>();
  const result = new Map<number, Float64Array>();
  for (const space of spaces) {
    const n = space.width;
    const total = numModels * n;
    const gram = new Float64Array(total * total);
    for (const p of params) {
      for (const solved of p.axes) {
        if (!solved.segments.some((g) => g.space === space.id)) continue;
        const slices = p.data.map((data, k) => {
          let aligned = data;
          const perms = k === 0 ? identity : alignment[k - 1]!;
          for (const other of p.axes) {
            if (other.axis === solved.axis) continue;
            const positions = axisPositions(other.segments, p.dims[other.axis]!, widths, perms);
            aligned = gather(aligned, p.dims, other.axis, positions);
          }
          return channelSlices(aligned, p.dims, solved, space.id, widths);
        });
        addGram(gram, slices, n);
      }
    }
    result.set(space.id, cosine(gram, total));
  }
  return result;
}

/** Adds the inner products of every pair of model-stacked slices (per model, per segment) to `gram` ([Kn, Kn]). */
function addGram(gram: Float64Array, slices: readonly Float64Array[][], n: number): void {
  const numModels = slices.length;
  const total = numModels * n;
  const segments = slices[0]!.length;
  for (let s = 0; s < segments; s++) {
    const sliceLength = slices[0]![s]!.length / n;
    for (let k = 0; k < numModels; k++) {
      const a = slices[k]![s]!;
      for (let l = k; l < numModels; l++) {
        const b = slices[l]![s]!;
        for (let i = 0; i < n; i++) {
          const rowA = i * sliceLength;
          for (let j = k === l ? i : 0; j < n; j++) {
            const rowB = j * sliceLength;
            let sum = 0;
            for (let t = 0; t < sliceLength; t++) sum += a[rowA + t]! * b[rowB + t]!;
            const f = k * n + i;
            const g = l * n + j;
            gram[f * total + g]! += sum;
            if (f !== g) gram[g * total + f]! += sum;
          }
        }
      }
    }
  }
}

/** The cosine similarity of a Gram matrix ([total, total]); a feature without weights is 0 to all. */
function cosine(gram: Float64Array, total: number): Float64Array {
  const out = new Float64Array(total * total);
  for (let i = 0; i < total; i++)
    for (let j = 0; j < total; j++) {
      const norm = Math.sqrt(gram[i * total + i]! * gram[j * total + j]!);
      out[i * total + j] = norm > 0 ? gram[i * total + j]! / norm : 0;
    }
  return out;
}

/**
 * (1 - weight) * activation correlation + weight * weight similarity, entry by entry; a
 * -Infinity correlation (a pair never to join directly) stays -Infinity.
 */
export function mixSimilarities(
  correlation: Float64Array,
  similarity: Float64Array,
  weight: number,
): Float64Array {
  const out = new Float64Array(correlation.length);
  for (let i = 0; i < correlation.length; i++) {
    const r = correlation[i]!;
    out[i] = r === -Infinity ? r : (1 - weight) * r + weight * similarity[i]!;
  }
  return out;
}
