/**
 * @file One step per op role (rules/types.ts `OpRole`): how a node of that role opens, carries,
 * ties, stacks or fixes the feature spaces of its inputs and output.
 */
import { fail, ok, type Result } from '../errors.js';
import type { Node } from '../onnx/model.js';
import { gemmWeightAxes } from './rules/gemm.js';
import type { OpRole } from './rules/types.js';
import type { Segment } from './space-types.js';
import type { SpaceWalk } from './space-walk.js';
import { staticSize } from './value-state.js';

/** What a role step does to the walk for one node: nothing to return, or a Failure naming the node. */
type RoleStep = (walk: SpaceWalk, node: Node) => Result<void>;

const DONE: Result<void> = ok(undefined);

/** Where a parameter tensor's channel axis is, given the activation's channel axis and rank (numpy broadcast). */
function broadcastAxis(
  paramDims: readonly number[],
  activationRank: number,
  channelAxis: number,
  width: number,
): number | undefined {
  const axis = channelAxis - (activationRank - paramDims.length);
  if (axis < 0 || axis >= paramDims.length) return undefined;
  if (paramDims[axis] === 1 && width !== 1) return undefined;
  return paramDims[axis] === width ? axis : undefined;
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

/** Which axes of a weight op's weight hold its output (rows) and input (columns) channels. */
function weightAxes(
  node: Node,
  weightDims: readonly number[],
  outputRank: number,
): { rowsAxis: number; columnsAxis: number; channelAxis: number } {
  if (node.opType === 'Gemm') {
    const axes = gemmWeightAxes(node, weightDims);
    return { rowsAxis: axes.outputAxis, columnsAxis: axes.inputAxis, channelAxis: 1 };
  }
  // MatMul's weight is [in, out] and its output's channels are on the last axis.
  if (node.opType === 'MatMul') return { rowsAxis: 1, columnsAxis: 0, channelAxis: outputRank - 1 };
  return { rowsAxis: 0, columnsAxis: 1, channelAxis: 1 };
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
  const { rowsAxis, columnsAxis, channelAxis } = weightAxes(
    node,
    weight.dims,
    walk.shapeOf(out).length,
  );
  const width = weight.dims[rowsAxis]!;
  const space = walk.newSpace(width, walk.order(node));
  const segments = [{ space, width, repeat: 1 }];
  walk.raw[space]!.producers.push(node.name);
  walk.raw[space]!.producerOutputs.push(out);
  walk.layouts.set(out, { axis: channelAxis, segments });
  walk.bindings.push({ initializer: node.inputs[1]!, axis: rowsAxis, role: 'rows', segments });
  const bias = node.inputs[2];
  if (bias !== undefined && bias !== '' && walk.initializer(bias) !== undefined) {
    const biasDims = walk.initializer(bias)!.dims;
    const axis = biasDims.length === 0 ? undefined : biasDims.length - 1;
    if (axis !== undefined && biasDims[axis] === width)
      walk.bindings.push({ initializer: bias, axis, role: 'rows', segments });
  }
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined)
    return fail(
      'unsupported-model',
      `Node '${node.name}' reads '${x}', whose channels zipit could not trace.`,
    );
  walk.bindings.push({
    initializer: node.inputs[1]!,
    axis: columnsAxis,
    role: 'columns',
    segments: inLayout.segments,
  });
  let offset = 0;
  for (const s of inLayout.segments) {
    const target = walk.space(s.space);
    target.consumers.push(node.name);
    target.siteCandidates.push({ value: walk.siteOf(x), offset, order: walk.order(node) });
    offset += s.width;
  }
  return DONE;
}

/**
 * A per-channel op (activations, pooling, BN, LN, depthwise Conv, arithmetic with a constant)
 * carries its input's layout; its per-channel parameters live on those spaces.
 */
function perChannelStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined) return DONE; // e.g. Cast of a shape value
  const out = node.outputs[0] ?? '';
  walk.layouts.set(out, inLayout);
  const width = inLayout.segments.reduce((a, s) => a + s.width * s.repeat, 0);
  for (const [i, p] of node.inputs.entries()) {
    if (i === 0 && node.opType !== 'Sub' && node.opType !== 'Div') continue;
    if (p === '' || p === x || walk.initializer(p) === undefined) continue;
    const dims = walk.initializer(p)!.dims;
    // BN/LN parameters are 1-D over channels; depthwise Conv weights have channels on axis 0.
    const axis =
      node.opType === 'BatchNormalization' ||
      node.opType === 'LayerNormalization' ||
      node.opType === 'Conv'
        ? dims[0] === width
          ? 0
          : undefined
        : broadcastAxis(dims, walk.shapeOf(out).length, inLayout.axis, width);
    if (axis === undefined) continue;
    walk.bindings.push({ initializer: p, axis, role: 'rows', segments: inLayout.segments });
    for (const s of inLayout.segments) walk.space(s.space).parameters.push(p);
  }
  return DONE;
}

/**
 * A residual op (Add/Sum of activations; also Sub/Mul/Div of two activations) needs its inputs'
 * channels to line up one to one, so it ties their spaces (and its output's) into one.
 */
function residualStep(walk: SpaceWalk, node: Node): Result<void> {
  const inLayout = walk.layouts.get(node.inputs[0] ?? '');
  const inputs = node.inputs.map((i) => walk.layouts.get(i));
  if (inputs.some((l) => l === undefined || l.segments.length !== inLayout?.segments.length)) {
    return fail(
      'unsupported-model',
      `Node '${node.name}' (${node.opType}) combines values whose channels do not line up.`,
    );
  }
  for (const l of inputs)
    l!.segments.forEach((s, j) => walk.union.union(inLayout!.segments[j]!.space, s.space));
  walk.layouts.set(node.outputs[0] ?? '', inLayout!);
  return DONE;
}

/** A channel Concat's output is its inputs' spaces side by side (a direct sum). */
function concatStep(walk: SpaceWalk, node: Node): Result<void> {
  const out = node.outputs[0] ?? '';
  const segments: Segment[] = node.inputs.flatMap((i) => walk.layouts.get(i)?.segments ?? []);
  walk.layouts.set(out, { axis: 1, segments });
  walk.concats.push({ node: node.name, value: out, parts: segments });
  return DONE;
}

/**
 * A flatten of C x h x w into features keeps the spaces but repeats each channel h*w times
 * consecutively, which is how the consumer's columns see them.
 */
function flattenStep(walk: SpaceWalk, node: Node): Result<void> {
  const x = node.inputs[0] ?? '';
  const inLayout = walk.layouts.get(x);
  if (inLayout === undefined) return DONE;
  const spatial = staticSize(walk.shapeOf(x).slice(2)) ?? 0;
  if (spatial === 0)
    return fail('unsupported-model', `Node '${node.name}' flattens a map of unknown size.`);
  walk.layouts.set(node.outputs[0] ?? '', {
    axis: 1,
    segments: inLayout.segments.map((s) => ({ ...s, repeat: s.repeat * spatial })),
  });
  return DONE;
}

/**
 * A barrier mixes channels in a way merging cannot follow (Softmax over channels, a channel
 * Gather, ...): its input's spaces are fixed and its output opens a new fixed space.
 */
function barrierStep(walk: SpaceWalk, node: Node): Result<void> {
  const reason = `node '${node.name}' (${node.opType})`;
  walk.fix(walk.layouts.get(node.inputs[0] ?? ''), reason);
  const out = node.outputs[0] ?? '';
  const channels = walk.shapeOf(out)[1];
  const width = typeof channels === 'number' ? channels : 0;
  const space = walk.newSpace(width, walk.order(node), reason);
  walk.layouts.set(out, { axis: 1, segments: [{ space, width, repeat: 1 }] });
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
