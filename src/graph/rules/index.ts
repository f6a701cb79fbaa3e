/** @file The op table: every supported ONNX op and its rule. An op outside it is a Failure. */
import { convRule } from './conv.js';
import { barrierRule, binaryRule, unaryRule } from './elementwise.js';
import { gemmRule, matMulRule } from './gemm.js';
import { batchNormRule, layerNormRule } from './normalization.js';
import { globalPoolRule, poolRule, reduceRule } from './pool.js';
import {
  castRule,
  concatRule,
  constantOfShapeRule,
  equalRule,
  expandRule,
  flattenRule,
  gatherRule,
  reshapeRule,
  shapeRule,
  sliceRule,
  squeezeRule,
  transposeRule,
  unsqueezeRule,
  whereRule,
} from './shape-ops.js';
import type { OpRule } from './types.js';

/** ONNX ops (default domain) that zipit understands. */
export const SUPPORTED_OPS = [
  'Conv',
  'Gemm',
  'MatMul',
  'BatchNormalization',
  'LayerNormalization',
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Elu',
  'Selu',
  'Gelu',
  'HardSigmoid',
  'HardSwish',
  'Softplus',
  'Clip',
  'Erf',
  'Identity',
  'Dropout',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'ReduceMean',
  'Flatten',
  'Reshape',
  'Concat',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Cast',
  'Slice',
  'Softmax',
  'LogSoftmax',
  'Transpose',
  'Pow',
  'Sqrt',
  'Expand',
  'ConstantOfShape',
  'Equal',
  'Where',
] as const;

/** One of {@link SUPPORTED_OPS}. */
export type SupportedOp = (typeof SUPPORTED_OPS)[number];

/** The rule of every supported op; a missing entry is a compile error. */
export const OP_RULES = {
  Conv: convRule,
  Gemm: gemmRule,
  MatMul: matMulRule,
  BatchNormalization: batchNormRule,
  LayerNormalization: layerNormRule,
  Relu: unaryRule,
  LeakyRelu: unaryRule,
  Sigmoid: unaryRule,
  Tanh: unaryRule,
  Elu: unaryRule,
  Selu: unaryRule,
  Gelu: unaryRule,
  HardSigmoid: unaryRule,
  HardSwish: unaryRule,
  Softplus: unaryRule,
  Clip: unaryRule,
  Erf: unaryRule,
  Identity: unaryRule,
  Dropout: unaryRule,
  Add: binaryRule,
  Sub: binaryRule,
  Mul: binaryRule,
  Div: binaryRule,
  MaxPool: poolRule,
  AveragePool: poolRule,
  GlobalAveragePool: globalPoolRule,
  GlobalMaxPool: globalPoolRule,
  ReduceMean: reduceRule,
  Flatten: flattenRule,
  Reshape: reshapeRule,
  Concat: concatRule,
  Shape: shapeRule,
  Gather: gatherRule,
  Unsqueeze: unsqueezeRule,
  Squeeze: squeezeRule,
  Cast: castRule,
  Slice: sliceRule,
  Softmax: barrierRule,
  LogSoftmax: barrierRule,
  Transpose: transposeRule,
  Pow: binaryRule,
  Sqrt: unaryRule,
  Expand: expandRule,
  ConstantOfShape: constantOfShapeRule,
  Equal: equalRule,
  Where: whereRule,
} satisfies Record<SupportedOp, OpRule>;

/** The rule for an op type, or undefined when unsupported. */
export function ruleFor(opType: string, domain: string): OpRule | undefined {
  if (domain !== '' && domain !== 'ai.onnx') return undefined;
  return (OP_RULES as Record<string, OpRule>)[opType];
}
