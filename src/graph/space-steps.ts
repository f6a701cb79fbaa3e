/**
 * @file One step per op role (rules/types.ts `OpRole`): how a node of that role opens, carries,
 * ties, stacks or fixes the feature spaces of its inputs and output. A node whose channels the
 * analysis cannot follow is a Failure naming it, never a silently wrong layout.
 */
import { fail, ok, type Result } from '../errors.js';
import type { Node } from '../onnx/model.js';
import { intAttr } from './attributes.js';
import { gemmWeightAxes } from './rules/gemm.js';
import { normalizeAxis } from './rules/helpers.js';
import { reduceAxesOf } from './rules/pool.js';
import type { OpRole } from './rules/types.js';
import { broadcastAxis, layoutWidth, reshapedLayout } from './space-layouts.js';
import type { ChannelLayout, Segment } from './space-types.js';
import type { SpaceWalk } from './space-walk.js';
import { formatShape, staticSize } from './value-state.js';

/** What a role step does to the walk for one node: nothing to return, or a Failure naming the node. */
type RoleStep = (walk: SpaceWalk, node: Node) => Result<void>;

const DONE: Result<void> = ok(undefined);

/** The one-line Failure for a node whose channels zipit cannot follow: `what` says why and what to do. */
function refuse(node: Node, what: string): Result<never> {
  return fail('unsupported-model', `Node '${node.name}' (${node.opType}) ${what}`);
}

/** The graph inputs are fixed spaces: their channels are the user's data, never merged. */
export function openInputSpaces(walk: SpaceWalk): void {
  for (const input of walk.graph.model.graph.inputs) {
    const channels = walk.shapeOf(input.name)[1];
    const width = typeof channels === 'number' ? channels : 0;
    const space = walk.newSpace(width, -1, `graph input '${input.name}'`);
    walk.layouts.set(input.name, { axis: 1, segments: [{ space, width, repeat: 1 }] });
  }
}

/** Where a weight op's channels are: in its weight, its bias, its input and its output. */
interface WeightAxes {
  /** Axis of the weight holding the output channels (M_k applies), and of the bias if bound. */
  readonly rowsAxis: number;
  readonly biasAxis: number | undefined;
  /** Axis of the weight holding the input channels (U_k applies). */
  readonly columnsAxis: number;
  /** Axis of the input the op contracts, and of the output carrying the new channels. */
  readonly inputAxis: number;
  readonly outputAxis: number;
  readonly inputs: number;
  readonly outputs: number;
}

function weightAxes(walk: SpaceWalk, node: Node, weightDims: readonly number[]): WeightAxes {
  const bias = node.inputs[2];
  const biasDims = bias ? walk.initializer(bias)?.dims : undefined;
  if (node.opType === 'Gemm') {
    const axes = gemmWeightAxes(node, weightDims, biasDims);
    return {
      rowsAxis: axes.outputAxis,
      biasAxis: axes.biasAxis,
      columnsAxis: axes.inputAxis,
      inputAxis: axes.activationAxis,
      outputAxis: 1,
      inputs: axes.inputs,
      outputs: axes.outputs,
    };
  }
  if (node.opType === 'MatMul') {
    // The weight is [in, out]; both activations keep their channels on the last axis.
    return {
      rowsAxis: 1,
      biasAxis: undefined,
      columnsAxis: 0,
      inputAxis: walk.shapeOf(node.inputs[0] ?? '').length - 1,
      outputAxis: walk.shapeOf(node.outputs[0] ?? '').length - 1,
      inputs: weightDims[0] ?? 0,
      outputs: weightDims[1] ?? 0,
    };
  }
  // Conv (group 1): weight [out, in, kh, kw], bias [out], NCHW activations.
  const outputs = weightDims[0] ?? 0;
  return {
    rowsAxis: 0,
    biasAxis: biasDims?.length === 1 && biasDims[0] === outputs ? 0 : undefined,
    columnsAxis: 1,
    inputAxis: 1,
    outputAxis: 1,
    inputs: weightDims[1] ?? 0,
    outputs,
  };
}

/**
 * A weight op (Conv, Gemm, MatMul) opens a new space for its output channels: its weight's rows
 * and its bias live on it. Its weight's columns consume its input's spaces, which are measured
 * at its input (the reference's measurement site).
 */
function weightStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const out = node.outputs[0] ?? '';
  const weight = walk.initializer(node.inputs[1] ?? '')!;
  const axes = weightAxes(walk, node, weight.dims);
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined)
    return fail(
      'unsupported-model',
      `Node '${node.name}' reads '${x}', whose channels zipit could not trace.`,
    );
  // Read before written: a fixed space opened for the input comes before the output's.
  const consumed = consumedLayout(walk, node, inLayout, axes);
  if (!consumed.ok) return consumed;
  const width = axes.outputs;
  const space = walk.newSpace(width, walk.order(node));
  const segments = [{ space, width, repeat: 1 }];
  walk.raw[space]!.producers.push(node.name);
  walk.raw[space]!.producerOutputs.push(out);
  walk.layouts.set(out, { axis: axes.outputAxis, segments });
  walk.bindings.push({ initializer: node.inputs[1]!, axis: axes.rowsAxis, role: 'rows', segments });
  if (axes.biasAxis !== undefined)
    walk.bindings.push({
      initializer: node.inputs[2]!,
      axis: axes.biasAxis,
      role: 'rows',
      segments,
    });
  walk.bindings.push({
    initializer: node.inputs[1]!,
    axis: axes.columnsAxis,
    role: 'columns',
    segments: consumed.value.segments,
  });
  let offset = 0;
  for (const s of consumed.value.segments) {
    const target = walk.space(s.space);
    target.consumers.push(node.name);
    target.siteCandidates.push({ value: walk.siteOf(x), offset, order: walk.order(node) });
    offset += s.width;
  }
  return DONE;
}

/**
 * The layout a weight op's columns consume: its input's, when the op contracts the axis holding
 * the input's channels and the weight has as many input channels as were traced there. A fixed
 * layout read along another axis or width (a graph input [N, T, D] read by a MatMul: graph
 * inputs are assumed NCHW, channels on axis 1; or one whose channel dim is symbolic) is read as
 * a new fixed space of the weight's width: a fixed space is never transformed, so any axis of it
 * reads the same.
 */
function consumedLayout(
  walk: SpaceWalk,
  node: Node,
  inLayout: ChannelLayout,
  axes: WeightAxes,
): Result<ChannelLayout> {
  const x = node.inputs[0] ?? '';
  const traced = layoutWidth(inLayout);
  if (inLayout.axis === axes.inputAxis && traced === axes.inputs) return ok(inLayout);
  const fixedBy = inLayout.segments.map((s) => walk.space(s.space).fixedBy);
  if (fixedBy.every((reason) => reason !== undefined))
    return ok(walk.fixedReading(x, axes.inputAxis, axes.inputs, walk.order(node), fixedBy[0] ?? x));
  if (inLayout.axis !== axes.inputAxis) {
    if (node.opType === 'Gemm' && axes.inputAxis === 0)
      return refuse(
        node,
        `has transA = 1: it reads the features of '${x}' on axis 0, but their channels are on axis ${inLayout.axis}, so zipit cannot merge them. Export the layer with transA = 0 (as PyTorch's nn.Linear does).`,
      );
    return refuse(
      node,
      `reads the features of '${x}' on axis ${axes.inputAxis}, but their channels are on axis ${inLayout.axis}; zipit cannot merge through it.`,
    );
  }
  return refuse(
    node,
    `has ${axes.inputs} input channels, but zipit traced ${traced} channels in '${x}'; zipit cannot line them up.`,
  );
}

/** Ops that treat axis 1 as the channels (NCHW) and mix the axes after it. */
const NCHW_OPS = new Set(['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Conv']);

/** Binary arithmetic, whose constant operand may come first (`Mul(scale, x)`). */
const BINARY_OPS = new Set(['Add', 'Sub', 'Mul', 'Div']);

/**
 * The input carrying the activation: the first, or for binary arithmetic the traced one that is
 * not a constant (a constant is traced only as a barrier's output, e.g. `Softmax(table)`).
 */
function activationInput(walk: SpaceWalk, node: Node): number | undefined {
  if (!BINARY_OPS.has(node.opType)) return walk.layouts.has(node.inputs[0] ?? '') ? 0 : undefined;
  const traced = [0, 1].filter((i) => walk.layouts.has(node.inputs[i] ?? ''));
  const constant = (i: number): boolean =>
    walk.graph.states.get(node.inputs[i] ?? '')?.constant === true;
  return traced.find((i) => !constant(i)) ?? traced[0];
}

/**
 * The axis of a per-channel op's parameter `dims` that holds the channels of a value of rank
 * `rank` laid out as `layout`, or undefined when the parameter is not per channel.
 */
function parameterAxis(
  node: Node,
  dims: readonly number[],
  rank: number,
  layout: ChannelLayout,
): number | undefined {
  const width = layoutWidth(layout);
  switch (node.opType) {
    case 'BatchNormalization':
      // BN's parameters are 1-D over axis 1; on another layout they are not per channel.
      return layout.axis === 1 && dims[0] === width ? 0 : undefined;
    case 'Conv':
      // A depthwise Conv's weight has the channels on axis 0.
      return dims[0] === width ? 0 : undefined;
    case 'LayerNormalization': {
      // Scale and bias are shaped like the normalised axes [axis, rank).
      const first = normalizeAxis(intAttr(node, 'axis', -1), rank);
      const axis = layout.axis - first;
      return axis >= 0 && dims[axis] === width ? axis : undefined;
    }
    default:
      return broadcastAxis(dims, rank, layout.axis, width);
  }
}

/**
 * A per-channel op (activations, pooling, BN, LN, depthwise Conv, arithmetic with a constant)
 * carries its input's layout; its per-channel parameters live on those spaces. A reduction over
 * the channel axis is a barrier instead.
 */
function perChannelStep(walk: SpaceWalk, node: Node): Result<void> {
  const index = activationInput(walk, node);
  if (index === undefined) return DONE; // e.g. Cast of a shape value
  const x = node.inputs[index]!;
  const inLayout = walk.layouts.get(x)!;
  const rank = walk.shapeOf(node.outputs[0] ?? '').length;
  if (NCHW_OPS.has(node.opType) && inLayout.axis !== 1)
    return refuse(
      node,
      `treats axis 1 as the channels, but the channels of '${x}' are on axis ${inLayout.axis}; zipit cannot follow it.`,
    );
  if (node.opType === 'ReduceMean' && reducesChannels(walk, node, inLayout))
    return barrierStep(walk, node);
  walk.layouts.set(node.outputs[0] ?? '', inLayout);
  for (const [i, p] of node.inputs.entries()) {
    if (i === index || p === '' || p === x) continue;
    const parameter = walk.initializer(p);
    if (parameter === undefined) {
      const computed = computedChannelConstant(walk, node, p, rank, inLayout);
      if (computed !== undefined) return computed;
      continue;
    }
    const axis = parameterAxis(node, parameter.dims, rank, inLayout);
    if (axis === undefined) continue;
    walk.bindings.push({ initializer: p, axis, role: 'rows', segments: inLayout.segments });
    for (const s of inLayout.segments) walk.space(s.space).parameters.push(p);
  }
  return DONE;
}

/** True when a ReduceMean reduces over the axis holding `layout`'s channels. */
function reducesChannels(walk: SpaceWalk, node: Node, layout: ChannelLayout): boolean {
  const rank = walk.shapeOf(node.inputs[0] ?? '').length;
  const axes = reduceAxesOf(node, walk.graph.states.get(node.inputs[1] ?? ''), rank);
  return axes === undefined || axes.includes(layout.axis);
}

/**
 * A per-channel constant that is computed by nodes (e.g. `Reshape(scale)` with constant folding
 * off) would be averaged by a merge instead of transformed with its channels: refused. Scalars
 * and constants broadcast over the channels are fine.
 */
function computedChannelConstant(
  walk: SpaceWalk,
  node: Node,
  value: string,
  rank: number,
  layout: ChannelLayout,
): Result<void> | undefined {
  const state = walk.graph.states.get(value);
  if (state?.constant !== true) return undefined;
  if (broadcastAxis(state.shape, rank, layout.axis, layoutWidth(layout)) === undefined)
    return undefined;
  return refuse(
    node,
    `applies '${value}', a per-channel constant computed by other nodes; zipit merges per-channel constants only when they are initializers. Export the model with constant folding on.`,
  );
}

/**
 * A residual op (Add/Sum of activations; also Sub/Mul/Div of two activations) needs its inputs'
 * channels to line up one to one, so it ties their spaces (and its output's) into one. Under
 * numpy broadcasting the channel axes line up when they sit equally far from the last axis.
 */
function residualStep(walk: SpaceWalk, node: Node): Result<void> {
  const first = walk.layouts.get(node.inputs[0] ?? '');
  const inputs = node.inputs.map((i) => walk.layouts.get(i));
  const fromEnd = (i: number): number =>
    walk.shapeOf(node.inputs[i] ?? '').length - (inputs[i]?.axis ?? 0);
  if (
    first === undefined ||
    inputs.some(
      (l, i) =>
        l === undefined || l.segments.length !== first.segments.length || fromEnd(i) !== fromEnd(0),
    )
  ) {
    return fail(
      'unsupported-model',
      `Node '${node.name}' (${node.opType}) combines values whose channels do not line up.`,
    );
  }
  for (const l of inputs)
    l!.segments.forEach((s, j) => walk.union.union(first.segments[j]!.space, s.space));
  const out = node.outputs[0] ?? '';
  walk.layouts.set(out, { axis: walk.shapeOf(out).length - fromEnd(0), segments: first.segments });
  return DONE;
}

/**
 * A Concat along the channel axis: its output is its inputs' spaces side by side (a direct
 * sum), so every input must be traced. Along another axis (the batch, a sequence) it is a
 * barrier, as before the analysis knew where channels are.
 */
function concatStep(walk: SpaceWalk, node: Node): Result<void> {
  const out = node.outputs[0] ?? '';
  const layouts = node.inputs.map((i) => walk.layouts.get(i));
  const traced = layouts.filter((l) => l !== undefined);
  if (traced.length === 0) return barrierStep(walk, node); // constants only: a fixed value
  const channelAxis = traced[0]!.axis;
  if (traced.some((l) => l.axis !== channelAxis))
    return refuse(
      node,
      `concatenates values whose channels are on different axes (${traced.map((l) => l.axis).join(', ')}); zipit cannot line them up.`,
    );
  const axis = normalizeAxis(intAttr(node, 'axis', 1), walk.shapeOf(out).length);
  if (axis !== channelAxis) return barrierStep(walk, node);
  const untraced = node.inputs.find((_, i) => layouts[i] === undefined);
  if (untraced !== undefined)
    return refuse(
      node,
      `concatenates '${untraced}', whose channels zipit could not trace (a constant, or a value computed from constants only); zipit merges a channel Concat only when every input is computed from the graph input. Compute that input from the data, or fold the constant into the next layer, and export again.`,
    );
  const segments: Segment[] = traced.flatMap((l) => l.segments);
  walk.layouts.set(out, { axis, segments });
  walk.concats.push({ node: node.name, value: out, parts: segments });
  return DONE;
}

/**
 * A flatten of C x h x w into features keeps the spaces but repeats each channel h*w times
 * consecutively, which is how the consumer's columns see them. Squeeze, Unsqueeze and a
 * ReduceMean that drops spatial axes only move the channel axis.
 */
function flattenStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined) return DONE;
  const out = node.outputs[0] ?? '';
  if (node.opType === 'ReduceMean') {
    if (reducesChannels(walk, node, inLayout)) return barrierStep(walk, node);
    const rank = walk.shapeOf(x).length;
    const reduced = reduceAxesOf(node, walk.graph.states.get(node.inputs[1] ?? ''), rank) ?? [];
    const axis = inLayout.axis - reduced.filter((a) => a < inLayout.axis).length;
    walk.layouts.set(out, { axis, segments: inLayout.segments });
    return DONE;
  }
  const inShape = walk.shapeOf(x);
  if ((staticSize(inShape.slice(inLayout.axis + 1)) ?? 0) === 0)
    return fail('unsupported-model', `Node '${node.name}' flattens a map of unknown size.`);
  const layout = reshapedLayout(inShape, walk.shapeOf(out), inLayout);
  if (layout === undefined)
    return refuse(
      node,
      `reshapes '${x}' ${formatShape(inShape)} to ${formatShape(walk.shapeOf(out))}, which splits or interleaves its channels (axis ${inLayout.axis}); zipit follows a flatten or reshape only when each channel stays one block (e.g. NCHW flattened from axis 1).`,
    );
  walk.layouts.set(out, layout);
  return DONE;
}

/**
 * A barrier mixes channels in a way merging cannot follow (Softmax over channels, a channel
 * Gather, a Concat along another axis, ...): its inputs' spaces are fixed and its output opens a
 * new fixed space, on its input's channel axis when the op keeps the rank.
 */
function barrierStep(walk: SpaceWalk, node: Node): Result<void> {
  const reason = `node '${node.name}' (${node.opType})`;
  for (const input of node.inputs) walk.fix(walk.layouts.get(input), reason);
  const x = node.inputs.find((i) => walk.layouts.has(i));
  const out = node.outputs[0] ?? '';
  const outShape = walk.shapeOf(out);
  const inAxis = x === undefined ? undefined : walk.layouts.get(x)!.axis;
  const axis =
    x !== undefined && inAxis !== undefined && walk.shapeOf(x).length === outShape.length
      ? inAxis
      : 1;
  const channels = outShape[axis];
  const width = typeof channels === 'number' ? channels : 0;
  const space = walk.newSpace(width, walk.order(node), reason);
  walk.layouts.set(out, { axis, segments: [{ space, width, repeat: 1 }] });
  return DONE;
}

/** The step of every role; a missing role is a compile error. Shape arithmetic has no channels. */
export const ROLE_STEPS = {
  weight: weightStep,
  'per-channel': perChannelStep,
  residual: residualStep,
  concat: concatStep,
  flatten: flattenStep,
  barrier: barrierStep,
  shape: () => DONE,
} satisfies Record<OpRole, RoleStep>;
