/** @file Weight matching (Git Re-Basin, Ainsworth et al. ICLR 2023): permutations from the weights alone, by iterated linear assignment over the spaces. */
import { fail, ok, type Result } from '../errors.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace, ParamBinding, Segment, SpaceAnalysis } from '../graph/spaces.js';
import { solveAssignment } from '../match/assignment.js';
import type { Matching } from '../match/types.js';
import type { Tensor } from '../onnx/tensor.js';
import { Random } from '../tensor/random.js';
import type { InitializerMaps } from './structure.js';

/** Tuning of {@link matchWeights}. */
export interface WeightMatchingOptions {
  /** Seed of the order in which each sweep visits the spaces (default 0). */
  readonly seed?: number;
  /** Sweeps over all spaces at most; it usually stops earlier, when a sweep changes nothing. Default 100 (Git Re-Basin's `max_iter`). */
  readonly maxSweeps?: number;
  /** m; weight matching permutes, so it must be the per-model width n (default). */
  readonly mergedWidth?: number;
  /**
   * Per model k >= 1 (index k - 1), permutations to start from (space id -> model k's channel
   * for each of model 0's), e.g. an activation matching's; spaces not given start at the identity.
   */
  readonly initial?: readonly ReadonlyMap<number, Int32Array>[];
  /** Count BatchNorm's running mean and variance in the objective too (default false). */
  readonly runningStatistics?: boolean;
}

/** What {@link matchWeights} found. */
export interface WeightMatchingResult {
  /** Per mergeable space id: the permutation matching, merged feature c = {0_c, 1_pi_1(c), ...}. */
  readonly matchings: Map<number, Matching>;
  /**
   * Per model k >= 1 (index k - 1): the objective sum_W <W_0, P_k(W_k)> before the first sweep
   * (identity permutations) and after every sweep. Never decreases.
   */
  readonly objectives: number[][];
}

/** One weight on the spaces: its axes, and model 0's and model k's values. */
export interface BoundParam {
  readonly name: string;
  readonly dims: readonly number[];
  /** One entry per bound axis: how the axis is made of spaces. */
  readonly axes: readonly { readonly axis: number; readonly segments: readonly Segment[] }[];
  /** Per model, the tensor's values (model 0's layout; shapes agree by the structure check). */
  readonly data: readonly Float32Array[];
}

/**
 * Weight matching: for K models of one structure, the permutation P_s of model k's channels of
 * every space s in `spaces` that (locally) maximises sum over the weights W touching any space
 * of <W_0, W_k with every bound axis permuted>, with no data. Each model k >= 1 is matched to
 * model 0 on its own (the usual extension to K > 2; merged feature c averages model 0's
 * feature c with each model's match of it, as Permute does).
 *
 * Iterated linear assignment (Git Re-Basin's Algorithm 1): start from identities; each sweep
 * visits the spaces in a seeded random order and, holding the other spaces' permutations,
 * solves the exact LAP of C_s[i, j] = sum over the weights' axes on s of
 * <slice i of W_0, slice j of W_k with its other axes permuted>; a new permutation is taken
 * only if it strictly improves C_s, so the objective never decreases and sweeps stop when
 * none changes (or after `maxSweeps`). A slice along an axis made of segments (a flatten
 * repeating each channel h*w times, a Concat stacking spaces) is read exactly as
 * merge/transform.ts's applyAlongAxis applies a matching: channel c of a segment at offset o
 * with repeat r covers positions o + c*r .. o + c*r + r - 1.
 *
 * Weights counted: every initializer whose bindings all lie on `spaces` or on fixed spaces
 * (a fixed space is never permuted) and that every model has under the structure maps; a head's
 * weights after a stop point are each model's own and are left out.
 *
 * NOTE: BatchNorm's running mean and variance are left out by default (`runningStatistics`):
 * they are statistics of the data, not weights, and the BN reset recomputes them. Their
 * products are large and one-signed (a variance pairs best with the largest variance), so they
 * swamp the filters' agreement: on models/resnet20-pair (2,000 merge images, BN reset) the
 * merge's joint accuracy was 14.9% with them and 21.1% without.
 *
 * NOTE: plain JS, no onnxruntime: C_s is a [n, L] x [L, n] product per weight axis, for
 * ResNet-20 x1 (n <= 64, L <= 576) a few million multiply-adds per space, far below what a
 * session's creation costs.
 */
export function matchWeights(
  graphs: readonly AnalyzedGraph[],
  maps: InitializerMaps,
  analysis: SpaceAnalysis,
  spaces: readonly FeatureSpace[],
  options: WeightMatchingOptions = {},
): Result<WeightMatchingResult> {
  const numModels = graphs.length;
  for (const space of spaces) {
    const mergedWidth = options.mergedWidth ?? space.width;
    if (mergedWidth !== space.width)
      return fail(
        'bad-argument',
        `Space ${space.id}: Expected --merged-width to be ${space.width} (the per-model width) for weights, got ${mergedWidth}`,
      );
  }
  const params = boundParams(graphs, maps, analysis, spaces, options.runningStatistics ?? false);
  const widths = new Map(analysis.spaces.map((s) => [s.id, s.width]));
  const permutations: Map<number, Int32Array>[] = [];
  const objectives: number[][] = [];
  for (let k = 1; k < numModels; k++) {
    const found = matchPair(params, k, spaces, widths, options);
    permutations.push(found.permutations);
    objectives.push(found.objectives);
  }
  const matchings = new Map<number, Matching>();
  for (const space of spaces) {
    const n = space.width;
    const groups: number[][] = [];
    for (let c = 0; c < n; c++)
      groups.push([c, ...permutations.map((p, k) => (k + 1) * n + p.get(space.id)![c]!)]);
    matchings.set(space.id, {
      numModels,
      width: n,
      mergedWidth: n,
      groups,
      sameModelMerges: 0,
      crossModelMerges: (numModels - 1) * n,
    });
  }
  return ok({ matchings, objectives });
}

/** The weights the objective counts (see {@link matchWeights}), with every model's values. */
export function boundParams(
  graphs: readonly AnalyzedGraph[],
  maps: InitializerMaps,
  analysis: SpaceAnalysis,
  spaces: readonly FeatureSpace[],
  runningStatistics: boolean,
): BoundParam[] {
  const skipped = new Set<string>();
  if (!runningStatistics)
    for (const node of graphs[0]!.model.graph.nodes)
      if (node.opType === 'BatchNormalization')
        node.inputs.slice(3, 5).forEach((i) => skipped.add(i));
  const permuted = new Set(spaces.map((s) => s.id));
  const fixed = new Set(analysis.spaces.filter((s) => s.kind === 'fixed').map((s) => s.id));
  const widths = new Map(analysis.spaces.map((s) => [s.id, s.width]));
  const byName = new Map<string, ParamBinding[]>();
  for (const binding of analysis.bindings)
    byName.set(binding.initializer, [...(byName.get(binding.initializer) ?? []), binding]);
  const params: BoundParam[] = [];
  for (const [name, bindings] of byName) {
    if (skipped.has(name)) continue;
    const segments = bindings.flatMap((b) => b.segments);
    if (!segments.some((s) => permuted.has(s.space))) continue;
    if (!segments.every((s) => permuted.has(s.space) || fixed.has(s.space))) continue;
    const tensors = graphs.map((g, k) => {
      const own = maps[k]!.get(name);
      return own === undefined ? undefined : g.model.graph.initializers.get(own);
    });
    const reference = tensors[0];
    if (reference?.dtype !== 'float32') continue;
    const dims = reference.dims;
    const sameShape = tensors.every(
      (t) =>
        t?.dtype === 'float32' &&
        t.dims.length === dims.length &&
        t.dims.every((d, i) => d === dims[i]),
    );
    if (!sameShape) continue;
    // One entry per axis: a weight bound twice on one axis (rows and columns) is one axis.
    const axes = new Map<number, readonly Segment[]>();
    for (const b of bindings) axes.set(b.axis, b.segments);
    const covers = [...axes].every(
      ([axis, segs]) =>
        segs.reduce((sum, s) => sum + widths.get(s.space)! * s.repeat, 0) === dims[axis],
    );
    if (!covers) continue;
    params.push({
      name,
      dims,
      axes: [...axes].map(([axis, segs]) => ({ axis, segments: segs })),
      data: tensors.map((t) => (t as Tensor<'float32'>).data),
    });
  }
  return params;
}

/** Weight matching of model k to model 0 alone: the permutations and the objective per sweep. */
function matchPair(
  params: readonly BoundParam[],
  k: number,
  spaces: readonly FeatureSpace[],
  widths: ReadonlyMap<number, number>,
  options: WeightMatchingOptions,
): { permutations: Map<number, Int32Array>; objectives: number[] } {
  const permutations = new Map(
    spaces.map((s) => [
      s.id,
      Int32Array.from(
        options.initial?.[k - 1]?.get(s.id) ?? Int32Array.from({ length: s.width }, (_, i) => i),
      ),
    ]),
  );
  const touching = new Map(
    spaces.map((s) => [
      s.id,
      params.filter((p) => p.axes.some((a) => a.segments.some((g) => g.space === s.id))),
    ]),
  );
  const positionMap = (axis: BoundParam['axes'][number], length: number): Int32Array =>
    axisPositions(axis.segments, length, widths, permutations);
  const objective = (): number => {
    let total = 0;
    for (const p of params) {
      let b = p.data[k]!;
      for (const axis of p.axes)
        b = gather(b, p.dims, axis.axis, positionMap(axis, p.dims[axis.axis]!));
      total += dot(p.data[0]!, b);
    }
    return total;
  };
  const objectives = [objective()];
  const groupsOf = new Map(spaces.map((s) => [s.id, s.groups ?? 1]));
  const random = new Random(options.seed ?? 0);
  const order = spaces.map((s) => s.id);
  const maxSweeps = options.maxSweeps ?? 100;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let changed = false;
    for (const id of random.shuffle(order)) {
      const n = widths.get(id)!;
      const similarity = new Float64Array(n * n); // [n, n]: rows model 0's channels, columns model k's
      for (const p of touching.get(id)!) {
        for (const solved of p.axes) {
          if (!solved.segments.some((g) => g.space === id)) continue;
          // Model k's weight with every other axis permuted as it currently is.
          let b = p.data[k]!;
          for (const other of p.axes) {
            if (other.axis !== solved.axis)
              b = gather(b, p.dims, other.axis, positionMap(other, p.dims[other.axis]!));
          }
          addSliceProducts(similarity, p.data[0]!, b, p.dims, solved, id, widths);
        }
      }
      const current = permutations.get(id)!;
      const cost = new Float64Array(n * n);
      for (let i = 0; i < n * n; i++) cost[i] = -similarity[i]!; // maximise = minimise the negative
      const columnOf = assignWithinGroups(cost, n, groupsOf.get(id) ?? 1);
      let before = 0;
      let after = 0;
      for (let i = 0; i < n; i++) {
        before += similarity[i * n + current[i]!]!;
        after += similarity[i * n + columnOf[i]!]!;
      }
      // NOTE: only a strict improvement (beyond rounding) is taken, so that ties between equal
      // permutations cannot make the sweeps cycle, and the objective never decreases.
      if (after > before + 1e-9 * Math.max(1, Math.abs(before))) {
        permutations.set(id, Int32Array.from(columnOf));
        changed = true;
      }
    }
    objectives.push(objective());
    if (!changed) break;
  }
  return { permutations, objectives };
}

/**
 * The linear assignment of an [n, n] cost, solved inside each of `groups` consecutive blocks
 * (attention heads: channel i of head h may only take a channel of head h).
 */
function assignWithinGroups(cost: Float64Array, n: number, groups: number): Int32Array {
  if (groups <= 1) return solveAssignment(cost, n);
  const d = n / groups;
  const columnOf = new Int32Array(n);
  for (let h = 0; h < groups; h++) {
    const block = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) block[i * d + j] = cost[(h * d + i) * n + h * d + j]!;
    const inner = solveAssignment(block, d);
    for (let i = 0; i < d; i++) columnOf[h * d + i] = h * d + inner[i]!;
  }
  return columnOf;
}

/**
 * For each position p along an axis, the position model k's value at p comes from under the
 * current permutations: channel c of a segment of a permuted space reads channel perm[c];
 * fixed spaces keep theirs.
 */
export function axisPositions(
  segments: readonly Segment[],
  length: number,
  widths: ReadonlyMap<number, number>,
  permutations: ReadonlyMap<number, Int32Array>,
): Int32Array {
  const positions = new Int32Array(length);
  let offset = 0;
  for (const segment of segments) {
    const width = widths.get(segment.space)!;
    const perm = permutations.get(segment.space);
    for (let c = 0; c < width; c++) {
      const from = perm === undefined ? c : perm[c]!;
      for (let r = 0; r < segment.repeat; r++)
        positions[offset + c * segment.repeat + r] = offset + from * segment.repeat + r;
    }
    offset += width * segment.repeat;
  }
  return positions;
}

/** `data` (shape `dims`) with positions along `axis` gathered: out[.., p, ..] = data[.., positions[p], ..]. */
export function gather(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  positions: Int32Array,
): Float32Array {
  const { outer, length, inner } = axisExtent(dims, axis);
  const out = new Float32Array(data.length);
  for (let o = 0; o < outer; o++) {
    for (let p = 0; p < length; p++) {
      const src = (o * length + positions[p]!) * inner;
      const dst = (o * length + p) * inner;
      out.set(data.subarray(src, src + inner), dst);
    }
  }
  return out;
}

/**
 * Adds to `similarity` ([n, n]) the products <slice i of a, slice j of b> along `solved`'s axis,
 * for each segment of space `id` on it (see {@link channelSlices}).
 */
function addSliceProducts(
  similarity: Float64Array,
  a: Float32Array,
  b: Float32Array,
  dims: readonly number[],
  solved: BoundParam['axes'][number],
  id: number,
  widths: ReadonlyMap<number, number>,
): void {
  const slicesA = channelSlices(a, dims, solved, id, widths);
  const slicesB = channelSlices(b, dims, solved, id, widths);
  const width = widths.get(id)!;
  for (const [s, sa] of slicesA.entries()) {
    const sb = slicesB[s]!;
    const sliceLength = sa.length / width;
    for (let i = 0; i < width; i++) {
      const rowA = i * sliceLength;
      for (let j = 0; j < width; j++) {
        const rowB = j * sliceLength;
        let sum = 0;
        for (let t = 0; t < sliceLength; t++) sum += sa[rowA + t]! * sb[rowB + t]!;
        similarity[i * width + j]! += sum;
      }
    }
  }
}

/**
 * A weight's slices on one of its axes: per segment of space `id` on the axis, an [n, L] matrix
 * whose row c is channel c's slice, every element whose position along the axis is one of c's
 * `repeat` positions (outer x repeat x inner values).
 */
export function channelSlices(
  data: Float32Array,
  dims: readonly number[],
  solved: BoundParam['axes'][number],
  id: number,
  widths: ReadonlyMap<number, number>,
): Float64Array[] {
  const { outer, length, inner } = axisExtent(dims, solved.axis);
  const found: Float64Array[] = [];
  let offset = 0;
  for (const segment of solved.segments) {
    const width = widths.get(segment.space)!;
    const repeat = segment.repeat;
    if (segment.space === id) {
      const sliceLength = outer * repeat * inner;
      const slices = new Float64Array(width * sliceLength); // [n, L]
      for (let c = 0; c < width; c++) {
        let at = c * sliceLength;
        for (let o = 0; o < outer; o++)
          for (let r = 0; r < repeat; r++) {
            const base = (o * length + offset + c * repeat + r) * inner;
            for (let t = 0; t < inner; t++, at++) slices[at] = data[base + t]!;
          }
      }
      found.push(slices);
    }
    offset += width * repeat;
  }
  return found;
}

/** Sizes before, along and after `axis` of a row-major tensor. */
function axisExtent(
  dims: readonly number[],
  axis: number,
): { outer: number; length: number; inner: number } {
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i]!;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  return { outer, length: dims[axis]!, inner };
}

/** Float64 inner product of two equal-length arrays. */
function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}
