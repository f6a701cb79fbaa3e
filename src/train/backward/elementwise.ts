/**
 * @file Backward rules of the element-wise ops: Identity, Relu, Erf, and Add, Mul, Div and
 * Expand with numpy broadcasting (a bias, a positional embedding, a class token).
 */
import { unbroadcast } from './broadcast.js';
import type { GradientRule, RuleContext } from './types.js';

/** dX = dY. */
export const identityGradient: GradientRule = ({ p, dy }) => [[p.node.inputs[0]!, dy]];

/** dX = dY where the output is positive, else 0. */
export const reluGradient: GradientRule = ({ e, p, dy }) => {
  const y = p.node.outputs[0]!;
  const active = e.b.op('Greater', [y, e.scalar(0)]);
  // dy times the mask as 0/1 floats: onnxruntime's Where measured 1.7x slower than Cast+Mul
  // (scratch, 128x16x28x28: 4.1 ms against 0.9 + 1.5 ms).
  const mask = e.b.op('Cast', [active], { to: 1 }); // FLOAT
  return [[p.node.inputs[0]!, e.b.op('Mul', [dy, mask])]];
};

/** The gradient term of input `index` from `grad` (output-shaped), unless that input is a constant. */
function toInput(
  { e, p, constants }: RuleContext,
  index: number,
  grad: () => string,
): Array<[string, string]> {
  const name = p.node.inputs[index]!;
  if (constants.has(name)) return [];
  return [[name, unbroadcast(e, grad(), p.outputShape, p.inputShapes[index]!)]];
}

/** Each input gets dY, summed over the axes it was broadcast along (a residual sum gets dY as it is). */
export const addGradient: GradientRule = (ctx) =>
  ctx.p.node.inputs.flatMap((_, i) => toInput(ctx, i, () => ctx.dy));

/** dA = dY * B, dB = dY * A, each summed to its input's shape. */
export const mulGradient: GradientRule = (ctx) => {
  const [a, b] = ctx.p.node.inputs as [string, string];
  return [
    ...toInput(ctx, 0, () => ctx.e.b.op('Mul', [ctx.dy, b])),
    ...toInput(ctx, 1, () => ctx.e.b.op('Mul', [ctx.dy, a])),
  ];
};

/** dA = dY / B; the planner only admits constant divisors. */
export const divGradient: GradientRule = (ctx) =>
  toInput(ctx, 0, () => ctx.e.b.op('Div', [ctx.dy, ctx.p.node.inputs[1]!]));

/** dX = dY * 2 / sqrt(pi) * exp(-x^2). */
export const erfGradient: GradientRule = ({ e, p, dy }) => {
  const x = p.node.inputs[0]!;
  const density = e.b.op('Exp', [e.b.op('Neg', [e.b.op('Mul', [x, x])])]);
  return [[x, e.b.op('Mul', [dy, e.b.op('Mul', [density, e.scalar(2 / Math.sqrt(Math.PI))])])]];
};

/** dX = dY summed over the axes Expand stretched. */
export const expandGradient: GradientRule = (ctx) => toInput(ctx, 0, () => ctx.dy);
