/** @file The gradient-rule table (one rule per trainable op) and the backward pass that applies it. */
import type { Emitter } from '../emitter.js';
import type { BatchNormSaved, LayerNormSaved } from '../forward.js';
import type { PlannedNode, TrainableOp, TrainingPlan } from '../plan.js';
import { GradientSums } from './accumulate.js';
import { convGradient } from './conv.js';
import {
  addGradient,
  divGradient,
  erfGradient,
  expandGradient,
  identityGradient,
  mulGradient,
  reluGradient,
} from './elementwise.js';
import { gemmGradient, matMulGradient } from './gemm.js';
import { batchNormGradient, layerNormGradient, softmaxGradient } from './normalization.js';
import { globalAveragePoolGradient, maxPoolGradient } from './pool.js';
import {
  concatGradient,
  flattenGradient,
  gatherGradient,
  reshapeGradient,
  sliceGradient,
  transposeGradient,
} from './shape-ops.js';
import type { ConvWeightGrad, GradientRule } from './types.js';

/** The rule of every trainable op; a missing entry is a compile error. */
export const GRADIENT_RULES = {
  Identity: identityGradient,
  Flatten: flattenGradient,
  Relu: reluGradient,
  Add: addGradient,
  GlobalAveragePool: globalAveragePoolGradient,
  MaxPool: maxPoolGradient,
  Gemm: gemmGradient,
  BatchNormalization: batchNormGradient,
  Conv: convGradient,
  MatMul: matMulGradient,
  Mul: mulGradient,
  Div: divGradient,
  Erf: erfGradient,
  Expand: expandGradient,
  Softmax: softmaxGradient,
  LayerNormalization: layerNormGradient,
  Transpose: transposeGradient,
  Reshape: reshapeGradient,
  Gather: gatherGradient,
  Slice: sliceGradient,
  Concat: concatGradient,
} satisfies Record<TrainableOp, GradientRule>;

/** What the backward pass starts from and how it may express the gradients. */
export interface BackwardOptions {
  /** The graph input: nodes reading it need no input gradient. */
  readonly input: string;
  /** The logits and d loss / d logits, where the pass starts. */
  readonly logits: string;
  readonly dLogits: string;
  /** The batch statistics each BatchNormalization's forward pass saved. */
  readonly saved: ReadonlyMap<PlannedNode, BatchNormSaved>;
  readonly layerNorms: ReadonlyMap<PlannedNode, LayerNormSaved>;
  readonly convWeightGrad: ConvWeightGrad;
  /** NCHWc channel block, when blocked convolutions are wanted. */
  readonly block: number | undefined;
}

/**
 * Emits the backward pass of `plan`, node by node in reverse topological order. The returned
 * sums hold every gradient; a weight's sum is emitted when the optimizer first asks for it.
 */
export function emitBackward(
  e: Emitter,
  plan: TrainingPlan,
  options: BackwardOptions,
): GradientSums {
  const grads = new GradientSums(e);
  grads.add(options.logits, options.dLogits);
  for (const p of [...plan.nodes].reverse()) {
    const dy = grads.sumOf(p.node.outputs[0]!);
    if (dy === undefined) continue;
    const needsInputGrad = p.node.inputs[0] !== options.input;
    const contributions = GRADIENT_RULES[p.op]({
      e,
      p,
      dy,
      needsInputGrad,
      saved: options.saved.get(p),
      layerNorm: options.layerNorms.get(p),
      constants: plan.constants,
      convWeightGrad: options.convWeightGrad,
      block: options.block,
    });
    for (const [name, grad] of contributions) grads.add(name, grad);
  }
  return grads;
}
