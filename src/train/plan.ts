/**
 * @file Reads a zoo inference graph into a training plan: its ops in order, with static shapes
 * for one batch size, and the graph's shape arithmetic folded into constants.
 */
import { fail, ok, type Result } from '../errors.js';
import { defaultOpset, type Attribute, type Model, type Node } from '../onnx/model.js';
import { int64Tensor, sizeOf, tensorToNumbers, type Tensor } from '../onnx/tensor.js';

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
  'MatMul',
  'Mul',
  'Div',
  'Erf',
  'Softmax',
  'LayerNormalization',
  'Transpose',
  'Reshape',
  'Gather',
  'Slice',
  'Concat',
  'Expand',
] as const;

/** One of {@link TRAINABLE_OPS}. */
export type TrainableOp = (typeof TRAINABLE_OPS)[number];

/**
 * Ops on int64 shape values, computed once at the plan's batch size: a transformer's class
 * token takes the batch size from `Shape` to broadcast itself.
 */
const FOLDED_OPS = ['Shape', 'Slice', 'Concat', 'Gather', 'Unsqueeze'] as const;

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
  /** The parameters and running statistics: everything the step changes. */
  readonly initializers: ReadonlyMap<string, Tensor>;
  /**
   * Values no step changes and no gradient reaches: int64 initializers (shapes, indices),
   * float scalars (the attention scale, GELU's constants) and the folded shape arithmetic.
   */
  readonly constants: ReadonlyMap<string, Tensor>;
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
  // Softmax's default axis and LayerNormalization exist in these forms from opset 13 and 17.
  if (defaultOpset(model) < 13) {
    return fail(
      'unsupported-model',
      `Expected a model of opset 13 or later to train, got opset ${defaultOpset(model)}.`,
    );
  }
  const shapes = new Map<string, readonly number[]>();
  shapes.set(input.name, [batchSize, ...(dims as number[])]);
  const initializers = new Map<string, Tensor>();
  const constants = new Map<string, Tensor>();
  for (const [name, tensor] of graph.initializers) {
    shapes.set(name, tensor.dims);
    // NOTE: a learned rank-0 scalar would be frozen here; the zoo has none (a one-channel
    // BatchNorm's [1] parameters and statistics are rank 1, and stay trainable).
    if (tensor.dtype !== 'float32' || tensor.dims.length === 0) constants.set(name, tensor);
    else initializers.set(name, tensor);
  }
  const nodes: PlannedNode[] = [];
  for (const node of graph.nodes) {
    const folded = foldShapeOp(node, shapes, constants);
    if (folded !== undefined) {
      if (!folded.ok) return folded;
      constants.set(node.outputs[0]!, folded.value);
      shapes.set(node.outputs[0]!, folded.value.dims);
      continue;
    }
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
    const shape = outputShapeOf(node, op, inputShapes, (name) => constantValues(constants, name));
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
    initializers,
    constants,
    input: input.name,
    inputShape: shapes.get(input.name)!,
    output: output.name,
    numClasses: logits[1]!,
    batchSize,
  });
}

/** `axis` (possibly negative) as an index into a shape of `rank` axes. */
export function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The numpy broadcast of two shapes, or undefined when they do not broadcast. */
export function broadcastShapes(
  a: readonly number[],
  b: readonly number[],
): readonly number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - rank + a.length] ?? 1;
    const db = b[i - rank + b.length] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(Math.max(da, db));
  }
  return out;
}

function outputShapeOf(
  node: Node,
  op: TrainableOp,
  inputs: readonly (readonly number[])[],
  valuesOf: (name: string) => readonly number[] | undefined,
): Result<readonly number[]> {
  const x = inputs[0]!;
  const refuse = (why: string): Result<readonly number[]> =>
    fail('unsupported-model', `${op} '${node.name}': ${why}`);
  // A constant input (an axis list, a shape): the planner must know it to plan static shapes.
  const known = (index: number): readonly number[] | undefined =>
    node.inputs[index] === undefined || node.inputs[index] === ''
      ? undefined
      : valuesOf(node.inputs[index]!);
  switch (op) {
    case 'Add':
    case 'Mul':
    case 'Div': {
      const shape = broadcastShapes(x, inputs[1]!);
      if (shape === undefined) return refuse(`shapes [${x}] and [${inputs[1]}] do not broadcast.`);
      if (op === 'Div' && known(1) === undefined)
        return refuse('the trainer divides by constants only.');
      return ok(shape);
    }
    case 'Erf':
      return ok(x);
    case 'Softmax':
    case 'LayerNormalization':
      if (normalizeAxis(int(node, 'axis', -1), x.length) !== x.length - 1)
        return refuse('the trainer normalises over the last axis only.');
      return ok(x);
    case 'MatMul': {
      const w = inputs[1]!;
      if (x.length < 2 || w.length < 2) return refuse('expected operands of rank 2 or more.');
      const sameBatch =
        w.length === 2 || (w.length === x.length && w.slice(0, -2).every((d, i) => d === x[i]));
      if (!sameBatch || x[x.length - 1] !== w[w.length - 2])
        return refuse(`shapes [${x}] and [${w}] are not a (batched) matrix product.`);
      return ok([...x.slice(0, -1), w[w.length - 1]!]);
    }
    case 'Transpose': {
      const perm = ints(node, 'perm', [...x.keys()].reverse());
      return ok(perm.map((p) => x[p]!));
    }
    case 'Reshape': {
      const target = known(1);
      if (target === undefined) return refuse('the target shape must be a constant.');
      if (int(node, 'allowzero', 0) !== 0) return refuse('allowzero is not supported.');
      if (target.filter((d) => d === -1).length > 1)
        return refuse(`at most one -1 in the target shape, got [${target}].`);
      const copied = target.map((d, i) => (d === 0 ? x[i]! : d));
      const rest = sizeOf(x) / sizeOf(copied.filter((d) => d !== -1));
      const shape = copied.map((d) => (d === -1 ? rest : d));
      if (sizeOf(shape) !== sizeOf(x) || !Number.isInteger(rest))
        return refuse(`cannot reshape [${x}] to [${target}].`);
      return ok(shape);
    }
    case 'Gather': {
      const indices = known(1);
      const axis = normalizeAxis(int(node, 'axis', 0), x.length);
      if (indices === undefined || inputs[1]!.length !== 0)
        return refuse('the trainer gathers one constant index (a class token) only.');
      if (indices[0]! < -x[axis]! || indices[0]! >= x[axis]!) return refuse('index out of range.');
      return ok(x.filter((_, i) => i !== axis));
    }
    case 'Slice': {
      const range = sliceRange(x, known(1), known(2), known(3), known(4));
      if (range === undefined)
        return refuse('the trainer slices with constant starts, ends and axes and step 1 only.');
      return ok(x.map((d, i) => (i === range.axis ? range.end - range.start : d)));
    }
    case 'Concat': {
      const axis = normalizeAxis(int(node, 'axis', 0), x.length);
      const fits = inputs.every(
        (s) => s.length === x.length && s.every((d, i) => i === axis || d === x[i]),
      );
      if (!fits) return refuse('inputs differ off the concatenation axis.');
      return ok(x.map((d, i) => (i === axis ? inputs.reduce((sum, s) => sum + s[axis]!, 0) : d)));
    }
    case 'Expand': {
      const target = known(1);
      const shape = target === undefined ? undefined : broadcastShapes(x, target);
      if (shape === undefined)
        return refuse('the target shape must be a constant that broadcasts.');
      return ok(shape);
    }
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

/** The numbers of constant `name`, or undefined when it is not a constant. */
/** The one axis and [start, end) a step-1 Slice keeps, or undefined when it is not that. */
export function sliceRange(
  shape: readonly number[],
  starts: readonly number[] | undefined,
  ends: readonly number[] | undefined,
  axes: readonly number[] | undefined,
  steps: readonly number[] | undefined,
): { axis: number; start: number; end: number } | undefined {
  if (starts?.length !== 1 || ends?.length !== 1 || (axes !== undefined && axes.length !== 1))
    return undefined;
  if (steps !== undefined && steps[0] !== 1) return undefined;
  const axis = normalizeAxis(axes?.[0] ?? 0, shape.length);
  const n = shape[axis]!;
  const clamp = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const start = clamp(starts[0]!);
  const end = Math.max(start, clamp(ends[0]!));
  return { axis, start, end };
}

function constantValues(
  constants: ReadonlyMap<string, Tensor>,
  name: string,
): readonly number[] | undefined {
  const tensor = constants.get(name);
  return tensor === undefined ? undefined : tensorToNumbers(tensor);
}

/**
 * The int64 value of a shape-arithmetic node whose inputs are all known at planning time,
 * undefined for a node that computes on activations, or a failure for shape arithmetic the
 * planner does not fold.
 */
function foldShapeOp(
  node: Node,
  shapes: ReadonlyMap<string, readonly number[]>,
  constants: ReadonlyMap<string, Tensor>,
): Result<Tensor> | undefined {
  if (!(FOLDED_OPS as readonly string[]).includes(node.opType) || node.domain !== '')
    return undefined;
  if (node.opType === 'Shape') {
    const shape = shapes.get(node.inputs[0]!);
    if (shape === undefined) return undefined;
    const dims = shape.slice(int(node, 'start', 0), int(node, 'end', shape.length));
    return ok(int64Tensor([dims.length], dims));
  }
  const values = node.inputs.map((name) => (name === '' ? [] : constantValues(constants, name)));
  const data = constants.get(node.inputs[0]!);
  if (data === undefined || data.dtype !== 'int64' || values.some((v) => v === undefined))
    return undefined;
  const [x, ...rest] = values as number[][];
  const unsupported = (): Result<Tensor> =>
    fail(
      'unsupported-model',
      `${node.opType} '${node.name}': the trainer folds shape arithmetic on 1-D int64 values only.`,
    );
  if (data.dims.length > 1) return unsupported();
  switch (node.opType) {
    case 'Slice': {
      const [starts, ends, axes, steps] = rest;
      if (
        (axes !== undefined && axes.some((a) => a !== 0 && a !== -1)) ||
        steps?.some((s) => s !== 1)
      )
        return unsupported();
      const n = x!.length;
      const clamp = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
      const sliced = x!.slice(clamp(starts![0]!), clamp(ends![0]!));
      return ok(int64Tensor([sliced.length], sliced));
    }
    case 'Concat': {
      const joined = (values as number[][]).flat();
      return ok(int64Tensor([joined.length], joined));
    }
    case 'Gather': {
      const indices = rest[0]!;
      const rank = constants.get(node.inputs[1]!)!.dims.length;
      if (rank > 1 || indices.some((i) => i < -x!.length || i >= x!.length)) return unsupported();
      const picked = indices.map((i) => x![i < 0 ? i + x!.length : i]!);
      const scalar = rank === 0;
      return ok(int64Tensor(scalar ? [] : [picked.length], picked));
    }
    case 'Unsqueeze':
      if (data.dims.length !== 0) return unsupported();
      return ok(int64Tensor([1], x!));
  }
  return unsupported();
}
