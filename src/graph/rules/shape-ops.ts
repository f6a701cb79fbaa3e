/** @file Shape arithmetic (Shape, Gather, Unsqueeze, Concat of shapes, ...) and the reshapes it feeds. */
import { ok, type Result } from '../../errors.js';
import type { Dim, Node } from '../../onnx/model.js';
import { broadcast } from './elementwise.js';
import { intAttr, intsAttr } from '../attributes.js';
import { staticSize, type ValueState } from '../value-state.js';
import { inputState, normalizeAxis, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

type Known = readonly (number | string)[];

function knownOf(ctx: RuleContext, i: number): Known | undefined {
  return ctx.inputs[i]?.known;
}

function allKnown(ctx: RuleContext, from = 0): boolean {
  return ctx.node.inputs
    .slice(from)
    .every((name, i) => name === '' || knownOf(ctx, i + from) !== undefined);
}

const knownState = (known: Known, scalar = false): ValueState => ({
  shape: scalar ? [] : [known.length],
  known,
});

function shapeOp(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  if (x.value.shape.some((d) => d === null))
    return shapeFailure(ctx.node, 'input rank or dims unknown.');
  const rank = x.value.shape.length;
  const start = normalizeAxis(intAttr(ctx.node, 'start', 0), rank);
  const end = normalizeAxis(intAttr(ctx.node, 'end', rank), rank);
  return ok([knownState(x.value.shape.slice(start, end) as Known)]);
}

function gather(ctx: RuleContext): Result<ValueState[]> {
  const data = knownOf(ctx, 0);
  const indices = knownOf(ctx, 1);
  const data0 = ctx.inputs[0];
  const indices0 = ctx.inputs[1];
  if (data === undefined && data0 !== undefined && indices0 !== undefined) {
    // An activation: a channel selection (a multi-head model's unmerge) or a position along
    // another axis (the class token). Only the indices' shape matters here: their values are
    // tracked only for short tensors (64 entries), and an unmerge of a 128-channel space is longer.
    const shape = data0.shape;
    const axis = normalizeAxis(intAttr(ctx.node, 'axis', 0), shape.length);
    if (axis === 0) return shapeFailure(ctx.node, 'Gather along the batch axis is not supported.');
    return ok([{ shape: [...shape.slice(0, axis), ...indices0.shape, ...shape.slice(axis + 1)] }]);
  }
  if (data === undefined || indices === undefined || intAttr(ctx.node, 'axis', 0) !== 0) {
    return shapeFailure(
      ctx.node,
      'Gather is supported on shape values and on activations (along an axis other than the batch) only.',
    );
  }
  const picked = indices.map((i) => data[normalizeAxis(Number(i), data.length)] ?? 0);
  const scalar = (ctx.inputs[1]?.shape.length ?? 1) === 0;
  return ok([knownState(picked, scalar)]);
}

function unsqueezeAxes(ctx: RuleContext): readonly number[] | undefined {
  const attr = intsAttr(ctx.node, 'axes');
  if (attr !== undefined) return attr;
  const known = knownOf(ctx, 1);
  return known?.map(Number);
}

function unsqueeze(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const axes = unsqueezeAxes(ctx);
  if (axes === undefined) return shapeFailure(ctx.node, 'axes must be constant.');
  const rank = x.value.shape.length + axes.length;
  const normalized = axes.map((a) => normalizeAxis(a, rank));
  const shape: Dim[] = [];
  let source = 0;
  for (let i = 0; i < rank; i++)
    shape.push(normalized.includes(i) ? 1 : (x.value.shape[source++] ?? null));
  return ok([{ shape, ...(x.value.known ? { known: x.value.known } : {}) }]);
}

function squeeze(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const rank = x.value.shape.length;
  const axes =
    unsqueezeAxes(ctx)?.map((a) => normalizeAxis(a, rank)) ??
    x.value.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  const shape = x.value.shape.filter((_, i) => !axes.includes(i));
  return ok([{ shape, ...(x.value.known ? { known: x.value.known } : {}) }]);
}

function concat(ctx: RuleContext): Result<ValueState[]> {
  if (allKnown(ctx)) {
    const known = ctx.node.inputs.flatMap((_, i) => [...(knownOf(ctx, i) ?? [])]);
    return ok([knownState(known)]);
  }
  const states = ctx.node.inputs.map((_, i) => ctx.inputs[i]);
  if (states.some((s) => s === undefined))
    return shapeFailure(ctx.node, 'an input shape is unknown.');
  const first = states[0]!.shape;
  const axis = normalizeAxis(intAttr(ctx.node, 'axis', 1), first.length);
  let total: Dim = 0;
  for (const s of states) {
    const d = s!.shape[axis] ?? null;
    total = typeof total === 'number' && typeof d === 'number' ? total + d : null;
  }
  return ok([{ shape: first.map((d, i) => (i === axis ? total : d)) }]);
}

function passKnown(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  return ok([x.value]);
}

/** The constant starts, ends, axes and steps of a Slice (inputs since opset 10, attributes before). */
export function sliceSpec(
  ctx: Pick<RuleContext, 'node' | 'inputs'>,
  rank: number,
): { starts: number[]; ends: number[]; axes: number[]; steps: number[] } | undefined {
  const read = (i: number, attr: string): number[] | undefined =>
    ctx.node.inputs[i] !== undefined && ctx.node.inputs[i] !== ''
      ? ctx.inputs[i]?.known?.every((v) => typeof v === 'number')
        ? [...(ctx.inputs[i]!.known as number[])]
        : undefined
      : (() => {
          const values = intsAttr(ctx.node, attr);
          return values === undefined ? undefined : [...values];
        })();
  const starts = read(1, 'starts');
  const ends = read(2, 'ends');
  if (starts === undefined || ends === undefined || starts.length !== ends.length) return undefined;
  const axes = (read(3, 'axes') ?? starts.map((_, i) => i)).map((a) => normalizeAxis(a, rank));
  const steps = read(4, 'steps') ?? starts.map(() => 1);
  if (axes.length !== starts.length || steps.length !== starts.length || steps.includes(0))
    return undefined;
  if (axes.some((a) => a < 0 || a >= rank)) return undefined;
  return { starts, ends, axes, steps };
}

/** Elements a Slice keeps along an axis of `size` (numpy's clamping rules). */
function slicedLength(size: number, start: number, end: number, step: number): number {
  const clamp = (v: number, low: number, high: number): number =>
    Math.max(low, Math.min(high, v < 0 ? v + size : v));
  if (step > 0) return Math.max(0, Math.ceil((clamp(end, 0, size) - clamp(start, 0, size)) / step));
  return Math.max(0, Math.ceil((clamp(start, -1, size - 1) - clamp(end, -1, size - 1)) / -step));
}

function slice(ctx: RuleContext): Result<ValueState[]> {
  const data = knownOf(ctx, 0);
  if (data === undefined && ctx.inputs[0] !== undefined) {
    // An activation: the kept positions along each sliced axis (e.g. x[:, 1:] over tokens).
    const shape = ctx.inputs[0].shape;
    const spec = sliceSpec(ctx, shape.length);
    if (spec === undefined)
      return shapeFailure(ctx.node, 'starts, ends, axes and steps must be constant.');
    const out = [...shape];
    for (const [i, axis] of spec.axes.entries()) {
      const size = shape[axis];
      out[axis] =
        typeof size === 'number'
          ? slicedLength(size, spec.starts[i]!, spec.ends[i]!, spec.steps[i]!)
          : spec.starts[i] === 0 && spec.ends[i]! >= 2 ** 31 - 1 && spec.steps[i] === 1
            ? size!
            : null;
    }
    return ok([{ shape: out }]);
  }
  const starts = knownOf(ctx, 1)?.map(Number) ?? intsAttr(ctx.node, 'starts');
  const ends = knownOf(ctx, 2)?.map(Number) ?? intsAttr(ctx.node, 'ends');
  if (data === undefined || starts === undefined || ends === undefined || starts.length !== 1) {
    return shapeFailure(ctx.node, 'Slice of a shape value needs constant starts and ends.');
  }
  const clamp = (v: number): number =>
    Math.max(0, Math.min(data.length, v < 0 ? v + data.length : v));
  return ok([knownState(data.slice(clamp(starts[0]!), clamp(ends[0]!)))]);
}

/** Transpose: the input's dims in `perm` order (reversed by default). */
function transpose(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const rank = x.value.shape.length;
  const perm = transposePerm(ctx.node, rank);
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
    return shapeFailure(
      ctx.node,
      `perm [${perm.join(', ')}] is not a permutation of ${rank} axes.`,
    );
  return ok([
    {
      shape: perm.map((p) => x.value.shape[p]!),
      ...(x.value.constant ? { constant: true } : {}),
    },
  ]);
}

/** A Transpose node's permutation for an input of rank `rank`. */
export function transposePerm(node: Node, rank: number): number[] {
  const perm = intsAttr(node, 'perm');
  return perm !== undefined ? [...perm] : Array.from({ length: rank }, (_, i) => rank - 1 - i);
}

/** Expand: numpy broadcast of the input to a known shape. */
function expand(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const target = knownOf(ctx, 1);
  if (target === undefined) return shapeFailure(ctx.node, 'the target shape could not be folded.');
  const shape = broadcast(x.value.shape, target);
  if (shape === undefined) return shapeFailure(ctx.node, 'the shapes do not broadcast.');
  return ok([{ shape, ...(x.value.constant ? { constant: true } : {}) }]);
}

/** ConstantOfShape of a known shape: a known tensor when it is short (shape arithmetic). */
function constantOfShape(ctx: RuleContext): Result<ValueState[]> {
  const dims = knownOf(ctx, 0);
  if (dims === undefined || !dims.every((d) => typeof d === 'number'))
    return shapeFailure(ctx.node, 'the shape must be constant.');
  const value = ctx.node.attributes.value;
  const fill =
    value?.type === 'tensor' && value.value.data.length === 1 ? Number(value.value.data[0]) : 0;
  const size = staticSize(dims as number[]) ?? 0;
  return ok([
    {
      shape: dims as number[],
      constant: true,
      ...(size <= 64 && dims.length === 1 ? { known: new Array<number>(size).fill(fill) } : {}),
    },
  ]);
}

/** Equal and Where of known values (the exporter's `expand(-1)` arithmetic): known results. */
function knownCompare(ctx: RuleContext): Result<ValueState[]> {
  const a = knownOf(ctx, 0);
  const b = knownOf(ctx, 1);
  const shape = ctx.inputs[0]?.shape ?? [];
  if (a === undefined || b === undefined || a.length !== b.length)
    return shapeFailure(ctx.node, 'supported on shape values only.');
  return ok([{ shape, known: a.map((x, i) => (x === b[i] ? 1 : 0)) }]);
}

function knownWhere(ctx: RuleContext): Result<ValueState[]> {
  const [c, x, y] = [knownOf(ctx, 0), knownOf(ctx, 1), knownOf(ctx, 2)];
  if (c === undefined || x === undefined || y === undefined)
    return shapeFailure(ctx.node, 'supported on shape values only.');
  if (c.length !== x.length || c.length !== y.length)
    return shapeFailure(ctx.node, 'expected operands of one length.');
  return ok([{ shape: [c.length], known: c.map((v, i) => (v !== 0 ? x[i]! : y[i]!)) }]);
}

/** Target shape of a Reshape from its known shape input (0 copies, -1 infers). */
export function reshapeTarget(
  input: readonly Dim[],
  target: Known,
  allowZero: boolean,
): Dim[] | undefined {
  const dims: Dim[] = target.map((t, i) => (t === 0 && !allowZero ? (input[i] ?? null) : t));
  const inferred = dims.indexOf(-1);
  if (inferred < 0) return dims;
  // Symbolic dims (the batch) must pass through unchanged; they cancel from both sides.
  const symbolsIn = input.filter((d) => typeof d === 'string');
  const symbolsOut = dims.filter((d) => typeof d === 'string');
  if (!input.includes(null) && symbolsIn.length === 1 && symbolsOut.length === 0) {
    // `x.view(-1, C*H*W)` exports as the constant [-1, C*H*W]: when the static dims agree
    // on both sides, the -1 is exactly the one symbolic dim (the batch).
    const staticIn = staticSize(input.filter((d) => typeof d === 'number'))!;
    const staticOut = staticSize(dims.filter((d, i) => i !== inferred && typeof d === 'number'))!;
    if (staticIn === staticOut) {
      dims[inferred] = symbolsIn[0]!;
      return dims;
    }
  }
  if (
    input.includes(null) ||
    symbolsIn.length !== symbolsOut.length ||
    !symbolsIn.every((s) => symbolsOut.includes(s))
  ) {
    return undefined;
  }
  const inputSize = staticSize(input.filter((d) => typeof d === 'number'))!;
  const outputSize = staticSize(dims.filter((d, i) => i !== inferred && typeof d === 'number'))!;
  if (outputSize === 0 || inputSize % outputSize !== 0) return undefined;
  dims[inferred] = inputSize / outputSize;
  return dims;
}

function reshape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const target = knownOf(ctx, 1);
  if (target === undefined)
    return shapeFailure(ctx.node, 'the target shape is not constant and could not be folded.');
  const shape = reshapeTarget(x.value.shape, target, intAttr(ctx.node, 'allowzero', 0) === 1);
  if (shape === undefined)
    return shapeFailure(ctx.node, `cannot reshape to [${target.join(', ')}].`);
  return ok([{ shape, ...(x.value.known ? { known: x.value.known } : {}) }]);
}

function flatten(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const axis = normalizeAxis(intAttr(ctx.node, 'axis', 1), x.value.shape.length);
  const product = (dims: readonly Dim[]): Dim =>
    dims.length === 1 ? dims[0]! : (staticSize(dims) ?? null);
  return ok([
    {
      shape: [
        axis === 0 ? 1 : product(x.value.shape.slice(0, axis)),
        product(x.value.shape.slice(axis)),
      ],
    },
  ]);
}

/**
 * A Reshape of an activation: to the same shape per-channel; otherwise the space analysis
 * decides whether its channels survive it (a flatten of C x h x w, attention's split into heads
 * and back) or it is a barrier (space-steps.ts flattenStep).
 */
function reshapeRole(ctx: RuleContext): 'flatten' | 'per-channel' | 'barrier' | 'shape' {
  if (ctx.inputs[0]?.known !== undefined) return 'shape';
  const input = ctx.inputs[0]?.shape ?? [];
  const target = knownOf(ctx, 1);
  const output = target ? reshapeTarget(input, target, false) : undefined;
  if (output === undefined) return 'barrier';
  if (output.length === input.length && output.every((d, i) => d === input[i]))
    return 'per-channel';
  return output[0] === input[0] && input.length >= 2 ? 'flatten' : 'barrier';
}

/** Shape, Gather, Cast, Slice on shapes: folded, never merged. */
export const shapeRule: OpRule = { role: 'shape', inferShape: shapeOp };
/**
 * Gather: of shape values (folded), or of an activation: a selection the space analysis follows
 * along a token or spatial axis and treats as a barrier along the channels.
 */
export const gatherRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'select'),
  inferShape: gather,
};
export const castRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'per-channel'),
  inferShape: passKnown,
};
/** Slice: of shape values (folded), or of an activation (a selection, as Gather). */
export const sliceRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known !== undefined ? 'shape' : 'select'),
  inferShape: slice,
};
/** Transpose of an activation moves its channel axis; of a constant it is a constant. */
export const transposeRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.constant === true ? 'shape' : 'transpose'),
  inferShape: transpose,
};
/** Expand of a constant (a class token broadcast over the batch) stays a constant. */
export const expandRule: OpRule = {
  role: (ctx) =>
    ctx.inputs[0]?.constant === true
      ? 'shape'
      : (ctx.inputs[0]?.shape.length ?? 0) === (ctx.inputs[1]?.known?.length ?? -1)
        ? 'per-channel'
        : 'barrier',
  inferShape: expand,
};
/** ConstantOfShape, Equal, Where: shape arithmetic of the exporters (folded). */
export const constantOfShapeRule: OpRule = { role: 'shape', inferShape: constantOfShape };
export const equalRule: OpRule = { role: 'shape', inferShape: knownCompare };
export const whereRule: OpRule = { role: 'shape', inferShape: knownWhere };
/** Unsqueeze/Squeeze: shape arithmetic, or dropping/adding size-1 spatial axes of an activation. */
export const unsqueezeRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'flatten'),
  inferShape: unsqueeze,
};
export const squeezeRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'flatten'),
  inferShape: squeeze,
};
/**
 * Concat: of shapes (folded) or of activations. Whether it runs along the channels (a concat
 * space) or along another axis (a barrier) depends on where the inputs' channels are, which the
 * space analysis knows (space-steps.ts): NCHW channels are on axis 1, MatMul outputs' on the last.
 */
export const concatRule: OpRule = {
  role: (ctx) => (allKnown(ctx) ? 'shape' : 'concat'),
  inferShape: concat,
};
export const reshapeRule: OpRule = { role: reshapeRole, inferShape: reshape };
export const flattenRule: OpRule = {
  role: (ctx) =>
    normalizeAxis(intAttr(ctx.node, 'axis', 1), ctx.inputs[0]?.shape.length ?? 0) === 1
      ? 'flatten'
      : 'barrier',
  inferShape: flatten,
};
