/** @file Backward rule of Conv: bias and input gradients, and which weight gradient to use. */
import { blockedConv, blockedConvFits, blockedFilter, reorderInput } from '../blocked-layout.js';
import { AXES_NHW, type Emitter } from '../emitter.js';
import { geometryOf, type PlannedNode } from '../plan.js';
import {
  convWeightGradByConv,
  convWeightGradByIm2col,
  type BlockedGradient,
} from './conv-weight.js';
import type { Gradient, RuleContext } from './types.js';

/** dW (blocked when the layout fits, else by {@link RuleContext.convWeightGrad}), db and dX. */
export function convGradient({
  e,
  p,
  dy,
  needsInputGrad,
  convWeightGrad,
  block,
}: RuleContext): Array<[string, Gradient]> {
  const b = e.b;
  const [x, w] = p.node.inputs as [string, string];
  const out: Array<[string, Gradient]> = [];
  const blocked = block !== undefined && blockedConvFits(p, block) ? block : undefined;
  // dY in the NCHWc layout feeds both the input gradient's Conv and the weight gradient's
  // filter; reordering it once saves a copy per Conv. Made on first use.
  let blockedDy: string | undefined;
  const sharedBlockedDy = (): string => (blockedDy ??= reorderInput(e, dy));
  const dW =
    blocked !== undefined && p.inputShapes[0]![0]! % blocked === 0
      ? convWeightGradByConv(e, p, dy, { block: blocked, blockedDy: sharedBlockedDy })
      : convWeightGrad === 'conv'
        ? convWeightGradByConv(e, p, dy)
        : convWeightGradByIm2col(e, p, dy);
  out.push([w, dW]);
  if (p.node.inputs[2] !== undefined && p.node.inputs[2] !== '') {
    out.push([p.node.inputs[2], b.op('ReduceSum', [dy, e.ints(AXES_NHW)], { keepdims: 0 })]);
  }
  if (needsInputGrad) {
    out.push([
      x,
      convInputGrad(
        e,
        p,
        dy,
        blocked === undefined ? undefined : { block: blocked, blockedDy: sharedBlockedDy },
      ),
    ]);
  }
  return out;
}

/** dX of a Conv: for stride 1 a Conv with the flipped, transposed kernel (measured faster here than ConvTranspose); otherwise ConvTranspose. */
function convInputGrad(
  e: Emitter,
  p: PlannedNode,
  dy: string,
  blocked: BlockedGradient | undefined,
): Gradient {
  const b = e.b;
  const [, , h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, , oh, ow] = p.outputShape as [number, number, number, number];
  const g = geometryOf(p.node, p.inputShapes[1]);
  const weight = p.node.inputs[1]!;
  if (
    g.strides[0] === 1 &&
    g.strides[1] === 1 &&
    g.pads[0] <= g.kernel[0] - 1 &&
    g.pads[1] <= g.kernel[1] - 1
  ) {
    const transposed = b.op('Transpose', [weight], { perm: [1, 0, 2, 3] }); // [I, O, kh, kw]
    const flipped = b.op('Slice', [
      transposed,
      e.ints([-1, -1]),
      e.ints([-(2 ** 31), -(2 ** 31)]),
      e.ints([2, 3]),
      e.ints([-1, -1]),
    ]);
    const pads = [g.kernel[0] - 1 - g.pads[0], g.kernel[1] - 1 - g.pads[1]];
    const attributes = { kernel_shape: g.kernel, pads: [pads[0]!, pads[1]!, pads[0]!, pads[1]!] };
    if (blocked === undefined) return b.op('Conv', [dy, flipped], attributes);
    const [o, i, kh, kw] = p.inputShapes[1] as [number, number, number, number];
    return blockedConv(
      e,
      { blocked: blocked.blockedDy() },
      blockedFilter(e, flipped, [i, o, kh, kw], blocked.block),
      undefined,
      attributes,
      {
        channels: i,
      },
    );
  }
  // The transposed convolution is exactly the adjoint of Conv; output_padding restores the
  // rows a strided Conv dropped.
  const outputPadding = [
    h - (g.strides[0] * (oh - 1) + g.kernel[0] - 2 * g.pads[0]),
    w - (g.strides[1] * (ow - 1) + g.kernel[1] - 2 * g.pads[1]),
  ];
  return {
    dy,
    weight,
    attributes: {
      kernel_shape: g.kernel,
      strides: g.strides,
      pads: [g.pads[0], g.pads[1], g.pads[0], g.pads[1]],
      output_padding: outputPadding,
    },
  };
}
