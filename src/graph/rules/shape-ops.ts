/** @file Shape arithmetic (Shape, Gather, Unsqueeze, Concat of shapes, ...) and the reshapes it feeds. */
import { ok, type Result } from '../../errors.js';
import type { Dim } from '../../onnx/model.js';
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
  const axis = intAttr(ctx.node, 'axis', 0);
  if (
    data === undefined &&
    axis === 1 &&
    ctx.inputs[0] !== undefined &&
    ctx.inputs[1] !== undefined
  ) {
    // A channel selection on an activation (a multi-head model's unmerge). Only the indices'
    // shape matters here: their values are tracked only for short tensors (64 entries), and an
    // unmerge of a 128-channel space is longer.
    const shape = ctx.inputs[0].shape;
    return ok([{ shape: [shape[0] ?? null, ...(ctx.inputs[1]?.shape ?? []), ...shape.slice(2)] }]);
  }
  if (data === undefined || indices === undefined || axis !== 0) {
    return shapeFailure(
      ctx.node,
      'Gather is supported on shape values and on activation channels (axis 1) only.',
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

function slice(ctx: RuleContext): Result<ValueState[]> {
  const data = knownOf(ctx, 0);
  const starts = knownOf(ctx, 1)?.map(Number) ?? intsAttr(ctx.node, 'starts');
  const ends = knownOf(ctx, 2)?.map(Number) ?? intsAttr(ctx.node, 'ends');
  if (data === undefined || starts === undefined || ends === undefined || starts.length !== 1) {
    return shapeFailure(ctx.node, 'Slice is supported on shape values only.');
  }
  const clamp = (v: number): number =>
    Math.max(0, Math.min(data.length, v < 0 ? v + data.length : v));
  return ok([knownState(data.slice(clamp(starts[0]!), clamp(ends[0]!)))]);
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

/** Folds channels with spatial dims when it keeps the batch axis and puts channels first. */
function reshapeRole(ctx: RuleContext): 'flatten' | 'per-channel' | 'barrier' | 'shape' {
  if (ctx.inputs[0]?.known !== undefined) return 'shape';
  const input = ctx.inputs[0]?.shape ?? [];
  const target = knownOf(ctx, 1);
  const output = target ? reshapeTarget(input, target, false) : undefined;
  if (output === undefined) return 'barrier';
  if (output.length === input.length && output.every((d, i) => d === input[i]))
    return 'per-channel';
  return output.length === 2 && output[0] === input[0] && input.length >= 2 ? 'flatten' : 'barrier';
}

/** Shape, Gather, Cast, Slice on shapes: folded, never merged. */
export const shapeRule: OpRule = { role: 'shape', inferShape: shapeOp };
/** Gather: of shape values (folded), or a constant channel selection of an activation, which merging cannot follow. */
export const gatherRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'barrier'),
  inferShape: gather,
};
export const castRule: OpRule = {
  role: (ctx) => (ctx.inputs[0]?.known ? 'shape' : 'per-channel'),
  inferShape: passKnown,
};
export const sliceRule: OpRule = { role: 'shape', inferShape: slice };
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
