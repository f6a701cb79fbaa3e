/** @file Gemm and MatMul with a weight initializer: the linear layers. */
import { ok, type Result } from '../../errors.js';
import { intAttr } from '../attributes.js';
import type { ValueState } from '../value-state.js';
import { inputState, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

function gemmShape(ctx: RuleContext): Result<ValueState[]> {
  const a = inputState(ctx, 0);
  if (!a.ok) return a;
  const b = ctx.initializer(ctx.node.inputs[1] ?? '');
  if (b === undefined)
    return shapeFailure(
      ctx.node,
      'the weight (input B) is not an initializer; zipit merges linear layers with stored weights only.',
    );
  if (a.value.shape.length !== 2 || b.dims.length !== 2)
    return shapeFailure(ctx.node, 'expected 2-D inputs.');
  const transA = intAttr(ctx.node, 'transA', 0) === 1;
  const transB = intAttr(ctx.node, 'transB', 0) === 1;
  const rows = transA ? a.value.shape[1] : a.value.shape[0];
  const inner = transA ? a.value.shape[0] : a.value.shape[1];
  const weightInner = transB ? b.dims[1] : b.dims[0];
  if (typeof inner === 'number' && inner !== weightInner) {
    return shapeFailure(ctx.node, `expected ${weightInner} input features, got ${inner}.`);
  }
  return ok([{ shape: [rows ?? null, (transB ? b.dims[0] : b.dims[1]) ?? null] }]);
}

function matMulShape(ctx: RuleContext): Result<ValueState[]> {
  const a = inputState(ctx, 0);
  if (!a.ok) return a;
  const b = ctx.initializer(ctx.node.inputs[1] ?? '');
  if (b === undefined || b.dims.length !== 2) {
    return shapeFailure(
      ctx.node,
      'expected a 2-D weight initializer as input B (MatMul of two activations is not supported).',
    );
  }
  const inner = a.value.shape[a.value.shape.length - 1];
  if (typeof inner === 'number' && inner !== b.dims[0])
    return shapeFailure(ctx.node, `expected ${b.dims[0]} input features, got ${inner}.`);
  return ok([{ shape: [...a.value.shape.slice(0, -1), b.dims[1] ?? null] }]);
}

/** Gemm: Y = alpha * A' B' + beta * C; with A an activation and B a weight. */
export const gemmRule: OpRule = { role: 'weight', inferShape: gemmShape };
/** MatMul with a weight initializer as B: channels on the last axis. */
export const matMulRule: OpRule = { role: 'weight', inferShape: matMulShape };
