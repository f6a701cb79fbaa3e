/** @file The contract of a gradient rule: what it sees, and the gradient terms it returns. */
import type { Tensor } from '../../onnx/tensor.js';
import type { Emitter } from '../emitter.js';
import type { BatchNormSaved, LayerNormSaved } from '../forward.js';
import type { PlannedNode } from '../plan.js';

/** How the weight gradient of a Conv is expressed (both exact; they differ only in speed). */
export type ConvWeightGrad = 'conv' | 'im2col';

/** Everything a gradient rule sees. */
export interface RuleContext {
  readonly e: Emitter;
  readonly p: PlannedNode;
  /** Name of d loss / d output. */
  readonly dy: string;
  /** False when the op reads the graph input (no gradient wanted there). */
  readonly needsInputGrad: boolean;
  readonly saved: BatchNormSaved | undefined;
  /** The mean and inverse deviation a LayerNormalization's forward pass saved. */
  readonly layerNorm: LayerNormSaved | undefined;
  /** Shape and index constants and frozen scalars: no gradient goes to them. */
  readonly constants: ReadonlyMap<string, Tensor>;
  readonly convWeightGrad: ConvWeightGrad;
  /** NCHWc channel block, when blocked convolutions are wanted. */
  readonly block: number | undefined;
}

/** A gradient rule: the gradient contributions of one node to its inputs, as [input name, grad name]. */
export type GradientRule = (ctx: RuleContext) => Array<[string, Gradient]>;

/**
 * A gradient term: a tensor's name, or a transposed convolution not yet emitted. The input
 * gradient of a strided Conv is a ConvTranspose; when several Convs with the same geometry
 * read one tensor (a stage's first conv and its projection shortcut), their terms become one
 * ConvTranspose over the concatenated output gradients and filters, which measured 1.5-1.9x
 * (x1) and 1.2-1.4x (x4) faster than two plus their Sum (scratch, 14x14 to 28x28).
 */
export type Gradient = string | PendingTransposedConv;

/** A ConvTranspose of `dy` with `weight`, held back so equal geometries can share one node. */
export interface PendingTransposedConv {
  readonly dy: string;
  readonly weight: string;
  readonly attributes: Readonly<Record<string, readonly number[]>>;
}
