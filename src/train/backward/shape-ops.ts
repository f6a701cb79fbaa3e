/**
 * @file Backward rules of the ops that move values without arithmetic: Flatten, Reshape,
 * Transpose, and Gather, Slice and Concat along one axis (zero-padded back where needed).
 */
import type { Emitter } from '../emitter.js';
import { normalizeAxis, sliceRange } from '../plan.js';
import type { GradientRule } from './types.js';

/** dX = dY reshaped to X's shape. */
export const flattenGradient: GradientRule = ({ e, p, dy }) => [
  [p.node.inputs[0]!, e.reshape(dy, p.inputShapes[0]!)],
];

/** dX = dY reshaped to X's shape. */
export const reshapeGradient = flattenGradient;

/** dX = dY transposed by the inverse permutation. */
export const transposeGradient: GradientRule = ({ e, p, dy }) => {
  const attribute = p.node.attributes['perm'];
  const rank = p.outputShape.length;
  const perm = attribute?.type === 'ints' ? attribute.value : [...Array(rank).keys()].reverse();
  const inverse = new Array<number>(rank);
  perm.forEach((from, to) => (inverse[from] = to));
  return [[p.node.inputs[0]!, e.b.op('Transpose', [dy], { perm: inverse })]];
};

/** `t` padded with zeros: `before` and `after` entries along `axis` of a rank-`rank` tensor. */
function padAxis(
  e: Emitter,
  t: string,
  rank: number,
  axis: number,
  before: number,
  after: number,
): string {
  if (before === 0 && after === 0) return t;
  const pads = new Array<number>(2 * rank).fill(0);
  pads[axis] = before;
  pads[rank + axis] = after;
  return e.b.op('Pad', [t, e.ints(pads)]);
}

function axisOf(p: Parameters<GradientRule>[0]['p'], rank: number): number {
  const attribute = p.node.attributes['axis'];
  return normalizeAxis(attribute?.type === 'int' ? attribute.value : 0, rank);
}

/** One index taken along an axis (a class token): dY put back at that index, zeros elsewhere. */
export const gatherGradient: GradientRule = ({ e, p, dy, constants }) => {
  const shape = p.inputShapes[0]!;
  const axis = axisOf(p, shape.length);
  const index = constants.get(p.node.inputs[1]!);
  const raw = Number(index!.data[0]);
  const i = raw < 0 ? raw + shape[axis]! : raw;
  const restored = e.b.op('Unsqueeze', [dy, e.ints([axis])]);
  return [[p.node.inputs[0]!, padAxis(e, restored, shape.length, axis, i, shape[axis]! - 1 - i)]];
};

/** dY put back in the kept range along the sliced axis, zeros elsewhere. */
export const sliceGradient: GradientRule = ({ e, p, dy, constants }) => {
  const shape = p.inputShapes[0]!;
  const values = (k: number): readonly number[] | undefined => {
    const t = constants.get(p.node.inputs[k] ?? '');
    return t === undefined ? undefined : Array.from(t.data as ArrayLike<number | bigint>, Number);
  };
  const range = sliceRange(shape, values(1), values(2), values(3), values(4))!;
  const after = shape[range.axis]! - range.end;
  return [[p.node.inputs[0]!, padAxis(e, dy, shape.length, range.axis, range.start, after)]];
};

/** Each input gets its own range of dY along the concatenation axis. */
export const concatGradient: GradientRule = ({ e, p, dy, constants }) => {
  const axis = axisOf(p, p.outputShape.length);
  const out: Array<[string, string]> = [];
  let offset = 0;
  p.node.inputs.forEach((name, i) => {
    const size = p.inputShapes[i]![axis]!;
    if (!constants.has(name)) {
      out.push([
        name,
        e.b.op('Slice', [dy, e.ints([offset]), e.ints([offset + size]), e.ints([axis])]),
      ]);
    }
    offset += size;
  });
  return out;
};
