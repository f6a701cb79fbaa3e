/** @file Backward rules of the linear layers: Gemm (Y = X W^T + b) and MatMul (with a weight, or of two activations). */
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

/**
 * Y = A B. With a [in, out] weight B (a token-wise linear layer): dB = A^T dY over every
 * position, as one Gemm of the flattened rows, and dA = dY B^T. With two activations of equal
 * batch axes (attention's Q K^T and P V): dA = dY B^T and dB = A^T dY per batch matrix.
 */
export const matMulGradient: GradientRule = ({ e, p, dy, needsInputGrad, constants }) => {
  const [a, w] = p.node.inputs as [string, string];
  const [aShape, wShape] = p.inputShapes as [readonly number[], readonly number[]];
  const rank = aShape.length;
  const swapLast = (t: string, r: number): string =>
    e.b.op('Transpose', [t], { perm: [...Array(r - 2).keys(), r - 1, r - 2] });
  const out: Array<[string, Gradient]> = [];
  if (!constants.has(w)) {
    if (wShape.length === 2 && rank > 2) {
      const [inDim, outDim] = wShape as [number, number];
      const rows = e.reshape(a, [-1, inDim]);
      out.push([w, e.b.op('Gemm', [rows, e.reshape(dy, [-1, outDim])], { transA: 1 })]);
    } else {
      out.push([w, e.b.op('MatMul', [swapLast(a, rank), dy])]);
    }
  }
  if (needsInputGrad && !constants.has(a)) {
    out.push([a, e.b.op('MatMul', [dy, swapLast(w, wShape.length)])]);
  }
  return out;
};
