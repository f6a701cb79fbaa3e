/** @file Gemm and MatMul with a weight initializer: the linear layers. */
import { ok, type Result } from '../../errors.js';
import type { Node } from '../../onnx/model.js';
import { intAttr } from '../attributes.js';
import type { ValueState } from '../value-state.js';
import { broadcast } from './elementwise.js';
import { inputState, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

/**
 * Where a Gemm's channels sit in its operands (ONNX Gemm: Y = alpha * A' B' + beta * C, with
 * A' = transA ? A^T : A and B' = transB ? B^T : B, so Y is [M, N] and B' is [K, N]).
 */
export interface GemmWeightAxes {
  /** Axis of B indexed by the N output channels (the rows a merge transforms with M_k): 0 when transB = 1 (PyTorch's [out, in]), else 1. */
  readonly outputAxis: 0 | 1;
  /** Axis of B indexed by the K input channels (the columns a merge transforms with U_k): the other one. */
  readonly inputAxis: 0 | 1;
  /** N, the number of output channels: `weightDims[outputAxis]`. */
  readonly outputs: number;
  /** K, the number of input channels: `weightDims[inputAxis]`. */
  readonly inputs: number;
  /** Axis of the activation A holding the K input features: 0 when transA = 1 (A stored [K, M]), else 1. */
  readonly activationAxis: 0 | 1;
  /**
   * Axis of C indexed by the output channels, when C is given and has one entry per channel:
   * C broadcasts to [M, N], so that is its last axis, when it holds N entries (a scalar or a
   * [1] C is one value shared by all channels, so it has no channel axis).
   */
  readonly biasAxis?: number;
}

/**
 * The channel axes of a Gemm node's weight B (dims `weightDims`, 2-D as the shape rule checks)
 * and, given its dims, of its bias C. The one place that reads transA/transB for the analysis,
 * the MAC count and the merge.
 */
export function gemmWeightAxes(
  node: Node,
  weightDims: readonly number[],
  biasDims?: readonly number[],
): GemmWeightAxes {
  const transB = intAttr(node, 'transB', 0) === 1;
  const outputAxis = transB ? 0 : 1;
  const inputAxis = transB ? 1 : 0;
  const outputs = weightDims[outputAxis] ?? 0;
  const biasAxis =
    biasDims !== undefined && biasDims.length > 0 && biasDims[biasDims.length - 1] === outputs
      ? biasDims.length - 1
      : undefined;
  return {
    outputAxis,
    inputAxis,
    outputs,
    inputs: weightDims[inputAxis] ?? 0,
    activationAxis: intAttr(node, 'transA', 0) === 1 ? 0 : 1,
    ...(biasAxis !== undefined ? { biasAxis } : {}),
  };
}

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
  const axes = gemmWeightAxes(ctx.node, b.dims);
  const rows = a.value.shape[1 - axes.activationAxis];
  const inner = a.value.shape[axes.activationAxis];
  if (typeof inner === 'number' && inner !== axes.inputs) {
    return shapeFailure(ctx.node, `expected ${axes.inputs} input features, got ${inner}.`);
  }
  return ok([{ shape: [rows ?? null, axes.outputs] }]);
}

/** MatMul of two activations of rank >= 3 ([..., M, K] x [..., K, N], batch dims broadcast). */
function activationMatMulShape(ctx: RuleContext): Result<ValueState[]> {
  const a = inputState(ctx, 0);
  if (!a.ok) return a;
  const b = inputState(ctx, 1);
  if (!b.ok) return b;
  const [x, y] = [a.value.shape, b.value.shape];
  if (x.length < 3 || y.length < 3)
    return shapeFailure(
      ctx.node,
      'expected a 2-D weight initializer as input B, or two activations of rank 3 or more (batched, as attention multiplies them).',
    );
  const [m, k1] = [x[x.length - 2] ?? null, x[x.length - 1] ?? null];
  const [k2, n] = [y[y.length - 2] ?? null, y[y.length - 1] ?? null];
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
    return shapeFailure(ctx.node, `inner dimensions ${k1} and ${k2} differ.`);
  const batch = broadcast(x.slice(0, -2), y.slice(0, -2));
  if (batch === undefined) return shapeFailure(ctx.node, 'batch dimensions do not broadcast.');
  return ok([{ shape: [...batch, m, n] }]);
}

function matMulShape(ctx: RuleContext): Result<ValueState[]> {
  const a = inputState(ctx, 0);
  if (!a.ok) return a;
  const b = ctx.initializer(ctx.node.inputs[1] ?? '');
  if (b === undefined || b.dims.length !== 2) return activationMatMulShape(ctx);
  const inner = a.value.shape[a.value.shape.length - 1];
  if (typeof inner === 'number' && inner !== b.dims[0])
    return shapeFailure(ctx.node, `expected ${b.dims[0]} input features, got ${inner}.`);
  return ok([{ shape: [...a.value.shape.slice(0, -1), b.dims[1] ?? null] }]);
}

/** Gemm: Y = alpha * A' B' + beta * C; with A an activation and B a weight. */
export const gemmRule: OpRule = { role: 'weight', inferShape: gemmShape };
/**
 * MatMul with a 2-D weight initializer as B (channels on the last axis), or of two activations
 * (attention), whose channels the space analysis follows as a contraction.
 */
export const matMulRule: OpRule = {
  role: (ctx) =>
    ctx.initializer(ctx.node.inputs[1] ?? '')?.dims.length === 2 ? 'weight' : 'contraction',
  inferShape: matMulShape,
};
