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
import { sliceSpec, transposePerm } from './rules/shape-ops.js';
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
  // A value without channels (a statistic over them) is read like a fixed space: never merged.
  // Attention scores read by a weight mix heads by index: those heads stay in place.
  const scores = walk.scores.get(x);
  if (scores !== undefined) walk.headsInPlace.add(scores.space);
  const inLayout = walk.channelFree.has(x)
    ? walk.fixedReading(
        x,
        axes.inputAxis,
        axes.inputs,
        walk.order(node),
        `value '${x}' without channels`,
      )
    : walk.layouts.get(x);
  if (inLayout === undefined)
    return fail(
      'unsupported-model',
      `Node '${node.name}' reads '${x}', whose channels zipit could not trace.`,
    );
  if (inLayout.heads !== undefined)
    return refuse(
      node,
      `reads '${x}', whose channels are split into attention heads; zipit follows heads only from the projections through the attention to its output projection.`,
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

/** Ops that pool or reduce over axes of their input. */
const REDUCTIONS = new Set([
  'ReduceMean',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
]);

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
  const out = node.outputs[0] ?? '';
  if (index === undefined) {
    // A value without channels stays one (the variance plus epsilon, its square root), unless
    // a constant broadcasts it to a new shape (a scale per channel): then it has channels again.
    const free = node.inputs.find((i) => walk.channelFree.has(i));
    if (free === undefined) return DONE; // e.g. Cast of a shape value
    const [a, b] = [walk.shapeOf(free), walk.shapeOf(out)];
    if (a.length !== b.length || a.some((d, i) => d !== b[i]))
      return refuse(
        node,
        `broadcasts '${free}', a value without channels (a statistic over them), to ${formatShape(b)}; zipit cannot tell which channels it then has.`,
      );
    walk.free(out, node.inputs);
    return DONE;
  }
  const x = node.inputs[index]!;
  const inLayout = walk.layouts.get(x)!;
  const rank = walk.shapeOf(out).length;
  if (NCHW_OPS.has(node.opType) && inLayout.axis !== 1)
    return refuse(
      node,
      `treats axis 1 as the channels, but the channels of '${x}' are on axis ${inLayout.axis}; zipit cannot follow it.`,
    );
  if (inLayout.heads !== undefined && REDUCTIONS.has(node.opType))
    return refuse(
      node,
      `reduces '${x}', whose channels are split into attention heads; zipit cannot follow it.`,
    );
  if (node.opType === 'ReduceMean' && reducesChannels(walk, node, inLayout)) {
    // A mean over the channels (a LayerNorm written out): the same under any permutation.
    walk.free(out, node.inputs);
    return DONE;
  }
  if (inLayout.heads !== undefined) {
    const vector = node.inputs.find(
      (p, i) => i !== index && (walk.initializer(p)?.data.length ?? 1) > 1,
    );
    if (vector !== undefined)
      return refuse(
        node,
        `applies '${vector}' to attention heads; zipit follows only scalars there (the attention scale).`,
      );
  }
  walk.carry(out, x, inLayout);
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
  const out = node.outputs[0] ?? '';
  // Values without channels broadcast over them (x - mean, x / std of a LayerNorm written out).
  const names = node.inputs.filter((i) => !walk.channelFree.has(i));
  if (names.length === 0) {
    walk.free(out, node.inputs);
    return DONE;
  }
  const first = walk.layouts.get(names[0] ?? '');
  const inputs = names.map((i) => walk.layouts.get(i));
  const fromEnd = (i: number): number =>
    walk.shapeOf(names[i] ?? '').length - (inputs[i]?.axis ?? 0);
  if (
    first === undefined ||
    inputs.some(
      (l, i) =>
        l === undefined ||
        l.segments.length !== first.segments.length ||
        fromEnd(i) !== fromEnd(0) ||
        l.heads?.count !== first.heads?.count ||
        (l.heads !== undefined &&
          walk.shapeOf(names[i] ?? '').length - l.heads.axis !==
            walk.shapeOf(names[0] ?? '').length - first.heads!.axis),
    )
  ) {
    return fail(
      'unsupported-model',
      `Node '${node.name}' (${node.opType}) combines values whose channels do not line up.`,
    );
  }
  // A value without channels must broadcast along the channels (and heads): size 1 there.
  const broadcastAlong = (value: string, fromEndAxis: number): boolean => {
    const shape = walk.shapeOf(value);
    const at = shape.length - fromEndAxis;
    return at < 0 || shape[at] === 1;
  };
  const firstRank = walk.shapeOf(names[0] ?? '').length;
  const bad = node.inputs.find(
    (i) =>
      walk.channelFree.has(i) &&
      (!broadcastAlong(i, fromEnd(0)) ||
        (first.heads !== undefined && !broadcastAlong(i, firstRank - first.heads.axis))),
  );
  if (bad !== undefined) {
    return refuse(
      node,
      `combines '${bad}', a value without channels, along the channels of '${names[0]}'; zipit cannot tell which channels it has.`,
    );
  }
  for (const l of inputs)
    l!.segments.forEach((s, j) => walk.union.union(first.segments[j]!.space, s.space));
  const shift = walk.shapeOf(out).length - walk.shapeOf(names[0] ?? '').length;
  walk.carry(out, names[0]!, first, (a) => a + shift);
  return DONE;
}

/**
 * A Concat along the channel axis: its output is its inputs' spaces side by side (a direct
 * sum), so every input must be traced. Along another axis (the batch, a sequence) it is a
 * barrier, as before the analysis knew where channels are.
 */
function concatStep(walk: SpaceWalk, node: Node): Result<void> {
  const out = node.outputs[0] ?? '';
  const initial = node.inputs.map((i) => walk.layouts.get(i));
  const firstTraced = initial.find((l) => l !== undefined);
  if (firstTraced === undefined) return barrierStep(walk, node); // constants only: a fixed value
  const channelAxis = firstTraced.axis;
  // A value without channels (a mean over them) joins as a fixed space of its own width.
  const layouts = node.inputs.map((input, i) => {
    const width = walk.shapeOf(input)[channelAxis];
    return initial[i] === undefined && walk.channelFree.has(input) && typeof width === 'number'
      ? walk.fixedReading(
          input,
          channelAxis,
          width,
          walk.order(node),
          `value '${input}' without channels`,
        )
      : initial[i];
  });
  const traced = layouts.filter((l) => l !== undefined);
  if (traced.some((l) => l.axis !== channelAxis))
    return refuse(
      node,
      `concatenates values whose channels are on different axes (${traced.map((l) => l.axis).join(', ')}); zipit cannot line them up.`,
    );
  const axis = normalizeAxis(intAttr(node, 'axis', 1), walk.shapeOf(out).length);
  if (axis !== channelAxis) return positionConcat(walk, node, traced, axis);
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
 * A Concat along positions (tokens, a sequence) of values with the same channels: the class
 * token put in front of the patch tokens, or two sequences joined. The traced inputs' spaces
 * are tied (each position holds the same channels); a constant input (the class token, through
 * Expand over the batch) is a parameter of the space, bound on its channel axis. A concat of
 * differently laid out values, or with another kind of input, stays a barrier.
 */
function positionConcat(
  walk: SpaceWalk,
  node: Node,
  traced: readonly ChannelLayout[],
  axis: number,
): Result<void> {
  const first = traced[0]!;
  const rank = walk.shapeOf(node.outputs[0] ?? '').length;
  const lined = traced.every(
    (l) =>
      l.heads === undefined &&
      l.segments.length === first.segments.length &&
      l.segments.every(
        (s, j) => s.width === first.segments[j]!.width && s.repeat === first.segments[j]!.repeat,
      ),
  );
  const parameters: { name: string; axis: number }[] = [];
  for (const input of node.inputs) {
    if (walk.layouts.has(input)) continue;
    const parameter = constantSource(walk, input);
    const dims = parameter === undefined ? undefined : walk.initializer(parameter)!.dims;
    const at =
      dims === undefined || dims.length !== rank
        ? undefined
        : broadcastAxis(dims, rank, first.axis, layoutWidth(first));
    if (parameter === undefined || at === undefined) return barrierStep(walk, node);
    parameters.push({ name: parameter, axis: at });
  }
  if (!lined || first.segments.some((s) => s.repeat !== 1) || axis === 0)
    return barrierStep(walk, node);
  for (const l of traced)
    l.segments.forEach((s, j) => walk.union.union(first.segments[j]!.space, s.space));
  for (const p of parameters) {
    walk.bindings.push({
      initializer: p.name,
      axis: p.axis,
      role: 'rows',
      segments: first.segments,
    });
    for (const s of first.segments) walk.space(s.space).parameters.push(p.name);
  }
  walk.layouts.set(node.outputs[0] ?? '', { axis: first.axis, segments: first.segments });
  return DONE;
}

/** The initializer a constant value is a broadcast or copy of (Expand, Identity), if any. */
function constantSource(walk: SpaceWalk, value: string): string | undefined {
  if (walk.initializer(value) !== undefined) return value;
  const producer = walk.graph.producer.get(value);
  if (producer === undefined || !['Expand', 'Identity'].includes(producer.opType)) return undefined;
  return constantSource(walk, producer.inputs[0] ?? '');
}

/**
 * A flatten of C x h x w into features keeps the spaces but repeats each channel h*w times
 * consecutively, which is how the consumer's columns see them. Squeeze, Unsqueeze and a
 * ReduceMean that drops spatial axes only move the channel axis.
 */
function flattenStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const out = node.outputs[0] ?? '';
  if (walk.channelFree.has(x)) {
    walk.free(out, node.inputs);
    return DONE;
  }
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined) return DONE;
  if (inLayout.heads !== undefined) return joinHeads(walk, node, inLayout);
  if (node.opType === 'ReduceMean') {
    if (reducesChannels(walk, node, inLayout)) {
      walk.free(out, node.inputs);
      return DONE;
    }
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
  if (layout === undefined && node.opType === 'Reshape') {
    const split = splitHeads(walk, node, inLayout);
    if (split !== undefined) return split;
    // Only a reshape to [N, F] claims to be a flatten; any other is a barrier, as it was.
    if (walk.shapeOf(out).length !== 2) return barrierStep(walk, node);
  }
  if (layout === undefined)
    return refuse(
      node,
      `reshapes '${x}' ${formatShape(inShape)} to ${formatShape(walk.shapeOf(out))}, which splits or interleaves its channels (axis ${inLayout.axis}); zipit follows a flatten or reshape only when each channel stays one block (e.g. NCHW flattened from axis 1).`,
    );
  walk.layouts.set(out, layout);
  return DONE;
}

/**
 * Attention's Reshape of [..., C] to [..., h, d]: the channels split into h heads of d. The
 * space is grouped into h heads (a merge keeps each head's channels in that head); undefined
 * when the reshape is not such a split.
 */
function splitHeads(walk: SpaceWalk, node: Node, layout: ChannelLayout): Result<void> | undefined {
  const x = node.inputs[0] ?? '';
  const inShape = walk.shapeOf(x);
  const outShape = walk.shapeOf(node.outputs[0] ?? '');
  const a = layout.axis;
  const [h, d] = [outShape[a], outShape[a + 1]];
  const segment = layout.segments[0];
  if (
    layout.segments.length !== 1 ||
    segment === undefined ||
    segment.repeat !== 1 ||
    outShape.length !== inShape.length + 1 ||
    typeof h !== 'number' ||
    typeof d !== 'number' ||
    h * d !== segment.width ||
    !inShape.every((dim, i) => i === a || dim === outShape[i < a ? i : i + 1])
  )
    return undefined;
  const space = walk.space(segment.space);
  if (space.groups !== undefined && space.groups !== h)
    return refuse(
      node,
      `splits '${x}' into ${h} heads, but its channels are also split into ${space.groups}; zipit cannot follow both.`,
    );
  space.groups = h;
  walk.layouts.set(node.outputs[0] ?? '', {
    axis: a + 1,
    segments: layout.segments,
    heads: { axis: a, count: h },
  });
  walk.unsplit.set(node.outputs[0] ?? '', x);
  return DONE;
}

/** The Reshape of attention's heads back to [..., C] (heads axis right before the channels). */
function joinHeads(walk: SpaceWalk, node: Node, layout: ChannelLayout): Result<void> {
  const x = node.inputs[0] ?? '';
  const inShape = walk.shapeOf(x);
  const outShape = walk.shapeOf(node.outputs[0] ?? '');
  const heads = layout.heads!;
  const a = heads.axis;
  const width = layoutWidth(layout);
  if (
    node.opType !== 'Reshape' ||
    layout.axis !== a + 1 ||
    outShape.length !== inShape.length - 1 ||
    outShape[a] !== width ||
    !outShape.every((dim, i) => i === a || dim === inShape[i < a ? i : i + 1])
  )
    return refuse(
      node,
      `reshapes '${x}' ${formatShape(inShape)} to ${formatShape(outShape)}; zipit follows attention heads back only into one channel axis ([..., h, d] to [..., h*d]).`,
    );
  walk.layouts.set(node.outputs[0] ?? '', { axis: a, segments: layout.segments });
  return DONE;
}

/** A Transpose moves the channel axis (and the heads axis) with the axes. */
function transposeStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const out = node.outputs[0] ?? '';
  const layout = walk.layouts.get(x);
  if (layout === undefined && !walk.channelFree.has(x)) return DONE;
  const perm = transposePerm(node, walk.shapeOf(x).length);
  if (perm[0] !== 0)
    return refuse(
      node,
      `moves the batch axis of '${x}'; zipit follows activations whose first axis is the batch (export sequence-first models batch-first).`,
    );
  if (layout === undefined) {
    walk.free(out, node.inputs);
    const scores = walk.scores.get(x);
    if (scores !== undefined && scores.headAxis >= 0)
      walk.scores.set(out, { ...scores, headAxis: perm.indexOf(scores.headAxis) });
    return DONE;
  }
  walk.carry(out, x, layout, (a) => perm.indexOf(a));
  return DONE;
}

/**
 * MatMul of two activations [..., M, K] x [..., K, N]: attention. Q K^T contracts the channels
 * of both (queries on the last axis, keys' transposed on the one before): the dot product of a
 * query and a key is the same under one permutation of both, so their spaces are tied, and the
 * scores have no channels. Scores times V contracts positions: the output keeps V's channels.
 * Heads must sit on the same batch axis of both operands.
 */
function contractionStep(walk: SpaceWalk, node: Node): Result<void> {
  const [a, b] = [node.inputs[0] ?? '', node.inputs[1] ?? ''];
  const out = node.outputs[0] ?? '';
  const [la, lb] = [walk.layouts.get(a), walk.layouts.get(b)];
  const [ra, rb] = [walk.shapeOf(a).length, walk.shapeOf(b).length];
  const rank = walk.shapeOf(out).length;
  const sameHeads = (x: ChannelLayout, rx: number, y: ChannelLayout, ry: number): boolean =>
    x.heads === undefined
      ? y.heads === undefined
      : y.heads !== undefined &&
        x.heads.count === y.heads.count &&
        x.heads.axis < rx - 2 &&
        rx - x.heads.axis === ry - y.heads.axis;
  if (la && lb && la.axis === ra - 1 && lb.axis === rb - 2 && sameHeads(la, ra, lb, rb)) {
    const [sa, sb] = [la.segments, lb.segments];
    if (sa.length !== 1 || sb.length !== 1 || sa[0]!.width !== sb[0]!.width)
      return refuse(node, `multiplies '${a}' and '${b}', whose channels do not line up.`);
    // Measured where the queries and keys are written, before their heads are split.
    const sites = [a, b].map((value) =>
      walk.layouts.get(value)!.heads === undefined ? value : walk.unsplit.get(value),
    );
    if (sites.some((site) => site === undefined || site === ''))
      return refuse(
        node,
        `multiplies attention heads whose projection zipit could not trace back to one [..., C] value.`,
      );
    walk.union.union(sa[0]!.space, sb[0]!.space);
    for (const site of sites)
      walk
        .space(sa[0]!.space)
        .siteCandidates.push({ value: site!, offset: 0, order: walk.order(node) });
    walk.free(out, node.inputs);
    walk.scores.set(out, {
      space: sa[0]!.space,
      headAxis: la.heads === undefined ? -1 : la.heads.axis + (rank - ra),
    });
    return DONE;
  }
  const keep = (layout: ChannelLayout, from: string): Result<void> => {
    const shift = rank - walk.shapeOf(from).length;
    walk.carry(out, from, layout, (a) => a + shift);
    return DONE;
  };
  // Scores x V: V's channels on its last axis pass; (V^T x scores^T) likewise on the rows.
  const scores = walk.scores.get(a);
  if (scores !== undefined && lb && lb.axis === rb - 1 && lb.segments.length === 1) {
    // Head h's scores must weigh head h's values: the same axis, counted from the end.
    const valueHeads = lb.heads === undefined ? -1 : rb - lb.heads.axis;
    const scoreHeads = scores.headAxis < 0 ? -1 : walk.shapeOf(a).length - scores.headAxis;
    if (valueHeads !== scoreHeads)
      return refuse(
        node,
        `weighs values whose heads do not line up with the scores' heads; zipit cannot follow it.`,
      );
    walk.attention.push({ queryKey: scores.space, value: lb.segments[0]!.space });
  }
  if (
    walk.channelFree.has(a) &&
    lb &&
    lb.axis === rb - 1 &&
    (lb.heads === undefined || lb.heads.axis < rb - 2)
  )
    return keep(lb, b);
  if (
    walk.channelFree.has(b) &&
    la &&
    la.axis === ra - 2 &&
    (la.heads === undefined || la.heads.axis < ra - 2)
  )
    return keep(la, a);
  return refuse(
    node,
    `multiplies two activations in a way zipit cannot follow (it follows attention: queries times keys transposed over their channels, and scores times values over positions).`,
  );
}

/**
 * Gather or Slice of an activation. Along the channels it is a barrier (a selection of
 * channels); along another axis (the class token, a crop of tokens) the channels pass, on an
 * axis that moves when a scalar index drops one.
 */
function selectStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const out = node.outputs[0] ?? '';
  if (walk.channelFree.has(x)) {
    walk.free(out, node.inputs);
    return DONE;
  }
  const layout = walk.layouts.get(x);
  if (layout === undefined) return DONE;
  const rank = walk.shapeOf(x).length;
  const selected =
    node.opType === 'Gather'
      ? [normalizeAxis(intAttr(node, 'axis', 0), rank)]
      : (sliceSpec({ node, inputs: node.inputs.map((i) => walk.graph.states.get(i)) }, rank)
          ?.axes ?? [layout.axis]);
  const spec =
    node.opType === 'Slice'
      ? sliceSpec({ node, inputs: node.inputs.map((i) => walk.graph.states.get(i)) }, rank)
      : undefined;
  const touched = (axis: number): boolean => {
    if (spec === undefined) return true;
    // A Slice keeps an axis as it is only from 0, forwards by 1, to the end (a flip reverses it).
    const i = spec.axes.indexOf(axis);
    const size = walk.shapeOf(x)[axis];
    return !(
      spec.starts[i] === 0 &&
      spec.steps[i] === 1 &&
      typeof size === 'number' &&
      spec.ends[i]! >= size
    );
  };
  if (
    selected.some((axis) => (axis === layout.axis || axis === layout.heads?.axis) && touched(axis))
  )
    return barrierStep(walk, node);
  if (layout.heads !== undefined)
    return refuse(
      node,
      `selects from '${x}', whose channels are split into attention heads; zipit cannot follow it.`,
    );
  const shift = walk.shapeOf(out).length - rank;
  const axis = selected[0]! < layout.axis ? layout.axis + shift : layout.axis;
  walk.layouts.set(out, { axis, segments: layout.segments });
  return DONE;
}

/**
 * A barrier mixes channels in a way merging cannot follow (Softmax over channels, a channel
 * Gather, a Concat along another axis, ...): its inputs' spaces are fixed and its output opens a
 * new fixed space, on its input's channel axis when the op keeps the rank.
 */
function barrierStep(walk: SpaceWalk, node: Node): Result<void> {
  const reason = `node '${node.name}' (${node.opType})`;
  // Softmax of attention scores: a value without channels stays one.
  if (
    node.inputs.some((i) => walk.channelFree.has(i)) &&
    !node.inputs.some((i) => walk.layouts.has(i))
  ) {
    walk.free(node.outputs[0] ?? '', node.inputs);
    return DONE;
  }
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
  transpose: transposeStep,
  contraction: contractionStep,
  select: selectStep,
  barrier: barrierStep,
  shape: () => DONE,
} satisfies Record<OpRole, RoleStep>;
