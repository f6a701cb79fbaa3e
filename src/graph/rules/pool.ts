/** @file Pooling: windowed and global, all per-channel. */
import { ok, type Result } from '../../errors.js';
import type { Node } from '../../onnx/model.js';
import { intAttr, intsAttr } from '../attributes.js';
import type { ValueState } from '../value-state.js';
import { windowShape } from './conv.js';
import { inputState, normalizeAxis, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

function poolShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const kernel = intsAttr(ctx.node, 'kernel_shape');
  if (kernel === undefined) return shapeFailure(ctx.node, 'missing kernel_shape.');
  const shape = [
    x.value.shape[0] ?? null,
    x.value.shape[1] ?? null,
    ...windowShape(ctx, x.value.shape, kernel),
  ];
  // MaxPool's optional second output (indices) has the same shape.
  return ok(ctx.node.outputs.map(() => ({ shape })));
}

function globalShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  return ok([{ shape: x.value.shape.map((d, i) => (i < 2 ? d : 1)) }]);
}

/**
 * The axes a Reduce node reduces over, normalised for an input of rank `rank`: its `axes`
 * attribute (opset < 18) or its constant second input `axesInput` (opset 18); undefined when not
 * constant. Shared with the space analysis, which checks them against the channel axis.
 */
export function reduceAxesOf(
  node: Node,
  axesInput: ValueState | undefined,
  rank: number,
): number[] | undefined {
  const fromAttr = intsAttr(node, 'axes');
  if (fromAttr !== undefined) return fromAttr.map((a) => normalizeAxis(a, rank));
  const known = axesInput?.known;
  return known?.every((v) => typeof v === 'number')
    ? known.map((a) => normalizeAxis(a as number, rank))
    : undefined;
}

function reduceAxes(ctx: RuleContext, rank: number): number[] | undefined {
  return reduceAxesOf(ctx.node, ctx.inputs[1], rank);
}

function reduceShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const axes = reduceAxes(ctx, x.value.shape.length);
  if (axes === undefined) return shapeFailure(ctx.node, 'reduction axes must be constant.');
  const keep = intAttr(ctx.node, 'keepdims', 1) === 1;
  const shape = x.value.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
  return ok([{ shape }]);
}

/** MaxPool / AveragePool / LpPool. */
export const poolRule: OpRule = { role: 'per-channel', inferShape: poolShape };
/** GlobalAveragePool / GlobalMaxPool. */
export const globalPoolRule: OpRule = { role: 'per-channel', inferShape: globalShape };
/**
 * ReduceMean / ReduceMax over spatial or token axes (PyTorch's `x.mean((2, 3))`); over the batch
 * a barrier. Over the channels (a LayerNorm's mean, written out) the space analysis makes the
 * output a value without channels.
 */
export const reduceRule: OpRule = {
  role(ctx) {
    const rank = ctx.inputs[0]?.shape.length ?? 0;
    const axes = reduceAxes(ctx, rank);
    const keep = intAttr(ctx.node, 'keepdims', 1) === 1;
    if (axes === undefined || axes.includes(0)) return 'barrier';
    return keep ? 'per-channel' : 'flatten';
  },
  inferShape: reduceShape,
};
