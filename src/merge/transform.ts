/** @file Merge and unmerge matrices as sparse maps, and applying them along a tensor axis. */
import type { Segment } from '../graph/spaces.js';
import type { Tensor } from '../onnx/tensor.js';

/**
 * A sparse linear map between channel index spaces: output channel `out[e]` receives
 * `weight[e]` times input channel `in[e]`. M_k (m x n, averaging) and U_k (n x m, 0/1, applied
 * to columns: merged column c sums the source columns j it covers) are both of this form.
 */
export interface ChannelMap {
  readonly outWidth: number;
  readonly inWidth: number;
  readonly out: Int32Array;
  readonly in: Int32Array;
  readonly weight: Float64Array;
}

/** Per space and model: the rows map (M_k) and the columns map (transpose of U_k). */
export interface SpaceTransform {
  readonly mergedWidth: number;
  readonly rows: readonly ChannelMap[];
  readonly columns: readonly ChannelMap[];
}

/**
 * The transforms of a matching given as groups (per merged channel, the sorted original
 * indices in [0, K*n); model k's channel j is k*n + j): M_k averages each group's members
 * from model k; U_k sends each of model k's channels to its group's merged channel. These are
 * the per-model blocks of ALGORITHM.md's U (U[f, c] = 1 iff f is in group c) and
 * M = (U D^-1)^T, kept sparse.
 *
 * NOTE: exact averages; the reference divides by (|group| + 1e-5), which shrinks every merged
 * weight by about 1e-5 relative for no stated reason.
 */
export function transformFromGroups(
  groups: readonly (readonly number[])[],
  numModels: number,
  width: number,
): SpaceTransform {
  const rows: ChannelMap[] = [];
  const columns: ChannelMap[] = [];
  for (let k = 0; k < numModels; k++) {
    const rOut: number[] = [];
    const rIn: number[] = [];
    const rW: number[] = [];
    const cOut: number[] = [];
    const cIn: number[] = [];
    for (const [c, group] of groups.entries()) {
      for (const index of group) {
        if (Math.floor(index / width) !== k) continue;
        rOut.push(c);
        rIn.push(index % width);
        rW.push(1 / group.length);
        cOut.push(c);
        cIn.push(index % width);
      }
    }
    rows.push({
      outWidth: groups.length,
      inWidth: width,
      out: Int32Array.from(rOut),
      in: Int32Array.from(rIn),
      weight: Float64Array.from(rW),
    });
    columns.push({
      outWidth: groups.length,
      inWidth: width,
      out: Int32Array.from(cOut),
      in: Int32Array.from(cIn),
      weight: new Float64Array(cOut.length).fill(1),
    });
  }
  return { mergedWidth: groups.length, rows, columns };
}

/** The transform of a fixed space: M_k = I / K, U_k = I. */
export function identityTransform(numModels: number, width: number): SpaceTransform {
  const groups = Array.from({ length: width }, (_, j) =>
    Array.from({ length: numModels }, (_, k) => k * width + j),
  );
  return transformFromGroups(groups, numModels, width);
}

/** A single-model transform that reorders channels: merged channel c is source channel perm[c]. */
export function permutationTransform(perm: Int32Array): SpaceTransform {
  const n = perm.length;
  const identity = Int32Array.from({ length: n }, (_, i) => i);
  const map: ChannelMap = {
    outWidth: n,
    inWidth: n,
    out: identity,
    in: Int32Array.from(perm),
    weight: new Float64Array(n).fill(1),
  };
  return { mergedWidth: n, rows: [map], columns: [map] };
}

/**
 * Applies, along `axis` of `tensor`, one map per segment (segments laid out consecutively, each
 * channel repeated `repeat` times). Returns a new float32 tensor.
 */
export function applyAlongAxis(
  tensor: Tensor<'float32'>,
  axis: number,
  segments: readonly Segment[],
  maps: readonly ChannelMap[],
): Tensor<'float32'> {
  const dims = tensor.dims;
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i]!;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  const inAxis = dims[axis]!;
  let outAxis = 0;
  for (const [s, segment] of segments.entries()) outAxis += maps[s]!.outWidth * segment.repeat;
  const input = tensor.data;
  const output = new Float32Array(outer * outAxis * inner);
  let inOffset = 0;
  let outOffset = 0;
  for (const [s, segment] of segments.entries()) {
    const map = maps[s]!;
    const repeat = segment.repeat;
    for (let e = 0; e < map.out.length; e++) {
      const w = map.weight[e]!;
      for (let r = 0; r < repeat; r++) {
        const src = (inOffset + map.in[e]! * repeat + r) * inner;
        const dst = (outOffset + map.out[e]! * repeat + r) * inner;
        for (let o = 0; o < outer; o++) {
          const si = o * inAxis * inner + src;
          const di = o * outAxis * inner + dst;
          for (let i = 0; i < inner; i++) output[di + i]! += w * input[si + i]!;
        }
      }
    }
    inOffset += map.inWidth * repeat;
    outOffset += map.outWidth * repeat;
  }
  const outDims = [...dims];
  outDims[axis] = outAxis;
  return { dtype: 'float32', dims: outDims, data: output };
}
