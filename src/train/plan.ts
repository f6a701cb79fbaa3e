/** @file Reads a zoo inference graph into a training plan: its ops in order, with static shapes for one batch size. */
import { fail, ok, type Result } from '../errors.js';
import type { Attribute, Model, Node } from '../onnx/model.js';
import type { Tensor } from '../onnx/tensor.js';

/** Ops the trainer can differentiate: exactly those the zoo emits. */
export const TRAINABLE_OPS = [
  'Conv',
  'BatchNormalization',
  'Relu',
  'Add',
  'MaxPool',
  'GlobalAveragePool',
  'Flatten',
  'Gemm',
  'Identity',
] as const;
/** One of {@link TRAINABLE_OPS}. */
export type TrainableOp = (typeof TRAINABLE_OPS)[number];

/** A forward node with the static shapes of its inputs and outputs at the plan's batch size. */
export interface PlannedNode {
  readonly node: Node;
  readonly op: TrainableOp;
  /** Shape of each input (weights included), in `node.inputs` order. */
  readonly inputShapes: readonly (readonly number[])[];
  /** Shape of the (single) output. */
  readonly outputShape: readonly number[];
}

/** A whole differentiable model: nodes in topological order, the weights, the graph's input and output. */
export interface TrainingPlan {
  readonly nodes: readonly PlannedNode[];
  readonly initializers: ReadonlyMap<string, Tensor>;
  readonly input: string;
  readonly inputShape: readonly number[];
  readonly output: string;
  readonly numClasses: number;
  readonly batchSize: number;
}

function ints(node: Node, name: string, fallback: readonly number[]): readonly number[] {
  const attribute: Attribute | undefined = node.attributes[name];
  return attribute?.type === 'ints' ? attribute.value : fallback;
}

function int(node: Node, name: string, fallback: number): number {
  const attribute: Attribute | undefined = node.attributes[name];
  return attribute?.type === 'int' ? attribute.value : fallback;
}

/** Conv / pool geometry of a node: kernel, strides and symmetric pads (the zoo only emits symmetric ones). */
export interface Geometry {
  readonly kernel: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly pads: readonly [number, number];
}

/** The geometry of a Conv or MaxPool node; `kernel` falls back to the weight's spatial dims. */
export function geometryOf(node: Node, weightDims?: readonly number[]): Geometry {
  const kernel = ints(node, 'kernel_shape', weightDims ? weightDims.slice(2) : [1, 1]);
  const strides = ints(node, 'strides', [1, 1]);
  const pads = ints(node, 'pads', [0, 0, 0, 0]);
  return {
    kernel: [kernel[0]!, kernel[1]!],
    strides: [strides[0]!, strides[1]!],
    pads: [pads[0]!, pads[1]!],
  };
}

function outputSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

/**
 * Plans a model for training at `batchSize`. Fails for an op outside {@link TRAINABLE_OPS}
 * or a layout we do not differentiate (asymmetric pads, groups, overlapping max-pools).
 */
export function planTraining(model: Model, batchSize: number): Result<TrainingPlan> {
  const graph = model.graph;
  const input = graph.inputs[0];
  const output = graph.outputs[0];
  if (
    input === undefined ||
    output === undefined ||
    graph.inputs.length !== 1 ||
    graph.outputs.length !== 1
  ) {
    return fail(
      'unsupported-model',
      'Expected a model with one input and one output (a zoo classifier).',
    );
  }
  const dims = (input.shape ?? []).slice(1);
  if (dims.length !== 3 || dims.some((d) => typeof d !== 'number')) {
    return fail(
      'bad-shape',
      `Expected the model input to be [N, C, H, W] with fixed C, H, W, got [${(input.shape ?? []).join(', ')}]`,
    );
  }
  const shapes = new Map<string, readonly number[]>();
  shapes.set(input.name, [batchSize, ...(dims as number[])]);
  for (const [name, tensor] of graph.initializers) shapes.set(name, tensor.dims);
  const nodes: PlannedNode[] = [];
  for (const node of graph.nodes) {
    if (!(TRAINABLE_OPS as readonly string[]).includes(node.opType) || node.domain !== '') {
      return fail(
        'unsupported-op',
        `Node '${node.name}' is a ${node.opType}, which the trainer cannot differentiate (it handles ${TRAINABLE_OPS.join(', ')}).`,
      );
    }
    const op = node.opType as TrainableOp;
    const inputShapes: (readonly number[])[] = [];
    for (const name of node.inputs) {
      const shape = shapes.get(name);
      if (shape === undefined)
        return fail(
          'unsupported-model',
          `Node '${node.name}' reads '${name}' before it is computed.`,
        );
      inputShapes.push(shape);
    }
    const shape = outputShapeOf(node, op, inputShapes);
    if (!shape.ok) return shape;
    shapes.set(node.outputs[0]!, shape.value);
    nodes.push({ node, op, inputShapes, outputShape: shape.value });
  }
  const logits = shapes.get(output.name);
  if (logits === undefined || logits.length !== 2) {
    return fail(
      'unsupported-model',
      `Expected the output '${output.name}' to be [N, classes] logits.`,
    );
  }
  return ok({
    nodes,
    initializers: graph.initializers,
    input: input.name,
    inputShape: shapes.get(input.name)!,
    output: output.name,
    numClasses: logits[1]!,
    batchSize,
  });
}

function outputShapeOf(
  node: Node,
  op: TrainableOp,
  inputs: readonly (readonly number[])[],
): Result<readonly number[]> {
  const x = inputs[0]!;
  switch (op) {
    case 'Conv': {
      const w = inputs[1]!;
      const g = geometryOf(node, w);
      if (
        int(node, 'group', 1) !== 1 ||
        ints(node, 'pads', [0, 0, 0, 0]).some((p, i, all) => p !== all[i % 2])
      ) {
        return fail(
          'unsupported-model',
          `Conv '${node.name}': the trainer handles group 1 with symmetric pads.`,
        );
      }
      if (ints(node, 'dilations', [1, 1]).some((d) => d !== 1)) {
        return fail(
          'unsupported-model',
          `Conv '${node.name}': the trainer handles dilation 1 only.`,
        );
      }
      return ok([
        x[0]!,
        w[0]!,
        outputSize(x[2]!, g.kernel[0], g.strides[0], g.pads[0]),
        outputSize(x[3]!, g.kernel[1], g.strides[1], g.pads[1]),
      ]);
    }
    case 'MaxPool': {
      const g = geometryOf(node);
      const tiles =
        g.kernel[0] === g.strides[0] &&
        g.kernel[1] === g.strides[1] &&
        g.pads.every((p) => p === 0);
      if (!tiles || x[2]! % g.kernel[0] !== 0 || x[3]! % g.kernel[1] !== 0) {
        return fail(
          'unsupported-model',
          `MaxPool '${node.name}': the trainer handles non-overlapping pools that tile the input.`,
        );
      }
      return ok([x[0]!, x[1]!, x[2]! / g.kernel[0], x[3]! / g.kernel[1]]);
    }
    case 'GlobalAveragePool':
      return ok([x[0]!, x[1]!, 1, 1]);
    case 'Flatten': {
      if (int(node, 'axis', 1) !== 1)
        return fail(
          'unsupported-model',
          `Flatten '${node.name}': the trainer handles axis 1 only.`,
        );
      return ok([x[0]!, x.slice(1).reduce((a, b) => a * b, 1)]);
    }
    case 'Gemm': {
      const w = inputs[1]!;
      if (
        int(node, 'transA', 0) !== 0 ||
        int(node, 'transB', 0) !== 1 ||
        node.inputs.length !== 3
      ) {
        return fail(
          'unsupported-model',
          `Gemm '${node.name}': the trainer handles x * W^T + b (transB = 1) only.`,
        );
      }
      return ok([x[0]!, w[0]!]);
    }
    case 'BatchNormalization':
    case 'Relu':
    case 'Add':
    case 'Identity':
      return ok(x);
  }
}
