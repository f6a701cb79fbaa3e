/** @file Backward rule of Gemm (the zoo's linear layers: Y = X W^T + b). */
import type { Gradient, GradientRule } from './types.js';

/** dW = dY^T X, db = sum of dY over the batch, dX = dY W. */
export const gemmGradient: GradientRule = ({ e, p, dy, needsInputGrad }) => {
  const [x, w, bias] = p.node.inputs as [string, string, string];
  const out: Array<[string, Gradient]> = [
    [w, e.b.op('Gemm', [dy, x], { transA: 1 })], // [out, in]
    [bias, e.b.op('ReduceSum', [dy, e.ints([0])], { keepdims: 0 })],
  ];
  if (needsInputGrad) out.push([x, e.b.op('MatMul', [dy, w])]); // [N, in]
  return out;
};
