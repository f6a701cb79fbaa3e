/** @file Backward rule of BatchNormalization on batch statistics (the forward pass saved them). */
import { AXES_NHW } from '../emitter.js';
import { floatAttribute } from '../forward.js';
import type { GradientRule } from './types.js';

/** d gamma, d beta and dX through the batch mean and variance. */
export const batchNormGradient: GradientRule = ({ e, p, dy, saved }) => {
  if (saved === undefined) throw new Error('BN backward without its forward');
  const b = e.b;
  const [x, gamma, beta] = p.node.inputs as [string, string, string];
  const [n, c, h, w] = p.outputShape as [number, number, number, number];
  const count = n * h * w;
  const epsilon = floatAttribute(p.node, 'epsilon', 1e-5);
  const invStd = b.op('Reciprocal', [
    b.op('Sqrt', [b.op('Add', [saved.variance, e.scalar(epsilon)])]),
  ]);
  const sumDy = b.op('ReduceSum', [dy, e.ints(AXES_NHW)], { keepdims: 0 }); // [C] = d beta
  const sumDyX = b.op('ReduceSum', [b.op('Mul', [dy, x]), e.ints(AXES_NHW)], { keepdims: 0 });
  // d gamma = sum(dy * xhat) = invStd * (sum(dy * x) - mean * sum(dy))
  const dGamma = b.op('Mul', [invStd, b.op('Sub', [sumDyX, b.op('Mul', [saved.mean, sumDy])])]);
  // dx = a*dy + k*x + c per channel, from dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)).
  const a = b.op('Mul', [gamma, invStd]);
  const k = b.op('Mul', [b.op('Mul', [a, invStd]), b.op('Mul', [dGamma, e.scalar(-1 / count)])]);
  const shift = b.op('Sub', [
    b.op('Mul', [a, b.op('Mul', [sumDy, e.scalar(-1 / count)])]),
    b.op('Mul', [k, saved.mean]),
  ]);
  const dx = b.op('Add', [
    e.channelAffine(dy, a, e.vector(new Array<number>(c).fill(0)), c),
    e.channelAffine(x, k, shift, c),
  ]);
  return [
    [x, dx],
    [gamma, dGamma],
    [beta, sumDy],
  ];
};

/**
 * LayerNormalization over the last axis: d gamma = sum(dy * xhat), d beta = sum(dy) over every
 * other axis, and dx = invStd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma.
 */
export const layerNormGradient: GradientRule = ({ e, p, dy, layerNorm }) => {
  if (layerNorm === undefined) throw new Error('LayerNormalization backward without its forward');
  const b = e.b;
  const [x, gamma, beta] = p.node.inputs as [string, string, string | undefined];
  const rank = p.outputShape.length;
  const outer = e.ints([...Array(rank - 1).keys()]);
  const xhat = b.op('Mul', [b.op('Sub', [x, layerNorm.mean]), layerNorm.invStdDev]);
  const g = b.op('Mul', [dy, gamma]);
  const meanG = b.op('ReduceMean', [g], { axes: [-1], keepdims: 1 });
  const meanGx = b.op('ReduceMean', [b.op('Mul', [g, xhat])], { axes: [-1], keepdims: 1 });
  const dx = b.op('Mul', [
    layerNorm.invStdDev,
    b.op('Sub', [b.op('Sub', [g, meanG]), b.op('Mul', [xhat, meanGx])]),
  ]);
  const out: Array<[string, string]> = [
    [x, dx],
    [gamma, b.op('ReduceSum', [b.op('Mul', [dy, xhat]), outer], { keepdims: 0 })],
  ];
  if (beta !== undefined && beta !== '')
    out.push([beta, b.op('ReduceSum', [dy, outer], { keepdims: 0 })]);
  return out;
};

/** Softmax over the last axis: dx = y * (dy - sum(dy * y)) along that axis. */
export const softmaxGradient: GradientRule = ({ e, p, dy }) => {
  const y = p.node.outputs[0]!;
  const dot = e.b.op('ReduceSum', [e.b.op('Mul', [dy, y]), e.ints([-1])], { keepdims: 1 });
  return [[p.node.inputs[0]!, e.b.op('Mul', [y, e.b.op('Sub', [dy, dot])])]];
};
