/** @file The contract of an op rule: shape inference and the op's role in feature-space analysis. */
import type { Result } from '../../errors.js';
import type { Node } from '../../onnx/model.js';
import type { Tensor } from '../../onnx/tensor.js';
import type { ValueState } from '../value-state.js';

/**
 * How an op relates channel axes (the feature-space analysis reads this):
 * - `weight`: Conv/Gemm/MatMul with a weight initializer: reads a space, writes a new one;
 * - `per-channel`: output channels are the input's (element-wise, pooling, BN, LN, depthwise);
 * - `residual`: Add/Sum of activations: ties its inputs and output into one space;
 * - `concat`: concatenation of activations: along the channels the output space is the direct
 *   sum of the inputs'; along another axis the analysis treats it as a barrier;
 * - `flatten`: Flatten/Reshape folding C x h x w into features (each channel repeated h*w), and
 *   the ops that only move the channel axis (Squeeze, Unsqueeze, ReduceMean without keepdims);
 * - `transpose`: Transpose of an activation: the channel axis (and a head axis) move;
 * - `contraction`: MatMul of two activations (attention's Q K^T and A V): contracts channels
 *   with channels (tying them) or positions (keeping the channels of the other operand);
 * - `select`: Gather/Slice of an activation: along the channels a barrier, along another axis
 *   (taking the class token) the channels pass;
 * - `shape`: computes shapes or indices only (Shape, Gather, Unsqueeze, ...), folded away;
 * - `barrier`: mixes channels in a way merging cannot follow (e.g. Softmax over channels):
 *   its input space is fixed.
 */
export type OpRole =
  | 'weight'
  | 'per-channel'
  | 'residual'
  | 'concat'
  | 'flatten'
  | 'transpose'
  | 'contraction'
  | 'select'
  | 'shape'
  | 'barrier';

/** Everything a rule may look at. */
export interface RuleContext {
  readonly node: Node;
  readonly inputs: readonly (ValueState | undefined)[];
  readonly initializer: (name: string) => Tensor | undefined;
  readonly opset: number;
}

/** One supported op. */
export interface OpRule {
  /** Fixed, or decided per node (Add of two activations is residual, of a bias per-channel). */
  readonly role: OpRole | ((ctx: RuleContext) => OpRole);
  /** Output states (one per node output), or a Failure naming the node. */
  inferShape(ctx: RuleContext): Result<ValueState[]>;
}
