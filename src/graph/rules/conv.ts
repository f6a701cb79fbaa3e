/** @file Conv: 2-D (or 1-D) convolution; group 1 is a weight op, depthwise is per-channel. */
import { ok, type Result } from '../../errors.js';
import type { Dim } from '../../onnx/model.js';
import { intAttr, intsAttr, stringAttr } from '../attributes.js';
import type { ValueState } from '../value-state.js';
import { inputState, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

/** Output size of a sliding window along one axis (ONNX Conv/Pool semantics). */
export function windowOutput(
  size: Dim,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
  autoPad: string,
  ceilMode = false,
): Dim {
  if (typeof size !== 'number') return size;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  const pads = autoPad === 'VALID' ? 0 : padBegin + padEnd;
  const span = size + pads - effective;
  return (ceilMode ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
}

/** Spatial output dims of a windowed op whose kernel is `kernel`. */
export function windowShape(
  ctx: RuleContext,
  input: readonly Dim[],
  kernel: readonly number[],
): Dim[] {
  const node = ctx.node;
  const spatial = input.length - 2;
  const strides = intsAttr(node, 'strides') ?? new Array<number>(spatial).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array<number>(spatial).fill(1);
  const pads = intsAttr(node, 'pads') ?? new Array<number>(2 * spatial).fill(0);
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  const ceil = intAttr(node, 'ceil_mode', 0) === 1;
  return kernel.map((k, i) =>
    windowOutput(
      input[i + 2] ?? null,
      k,
      strides[i] ?? 1,
      pads[i] ?? 0,
      pads[i + spatial] ?? 0,
      dilations[i] ?? 1,
      autoPad,
      ceil,
    ),
  );
}

function convShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  const weight = ctx.initializer(ctx.node.inputs[1] ?? '');
  if (weight === undefined)
    return shapeFailure(
      ctx.node,
      'the weight is not an initializer; zipit merges convolutions with stored weights only.',
    );
  const [out, perGroup, ...kernel] = weight.dims;
  const channels = x.value.shape[1];
  const group = intAttr(ctx.node, 'group', 1);
  if (typeof channels === 'number' && perGroup !== undefined && channels !== perGroup * group) {
    return shapeFailure(ctx.node, `expected ${perGroup * group} input channels, got ${channels}.`);
  }
  return ok([
    { shape: [x.value.shape[0] ?? null, out ?? null, ...windowShape(ctx, x.value.shape, kernel)] },
  ]);
}

/** Conv rule: group 1 writes a new space; depthwise (group = C_in = C_out) keeps its input's. */
export const convRule: OpRule = {
  role(ctx) {
    const group = intAttr(ctx.node, 'group', 1);
    if (group === 1) return 'weight';
    const weight = ctx.initializer(ctx.node.inputs[1] ?? '');
    return weight !== undefined && weight.dims[0] === group && weight.dims[1] === 1
      ? 'per-channel'
      : 'barrier';
  },
  inferShape: convShape,
};
