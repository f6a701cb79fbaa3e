/** @file Backward rules of the pools: GlobalAveragePool and non-overlapping MaxPool. */
import { geometryOf } from '../plan.js';
import type { GradientRule } from './types.js';

/** dX = dY / (H * W), spread over each plane. */
export const globalAveragePoolGradient: GradientRule = ({ e, p, dy }) => {
  const shape = p.inputShapes[0]!;
  const scaled = e.b.op('Mul', [dy, e.scalar(1 / (shape[2]! * shape[3]!))]);
  return [[p.node.inputs[0]!, e.b.op('Expand', [scaled, e.ints(shape)])]];
};

/** dX = dY at the position(s) of each window's max, else 0. */
export const maxPoolGradient: GradientRule = ({ e, p, dy }) => {
  // Non-overlapping pools: a window's gradient goes to the position(s) equal to its max.
  const [n, c, h, w] = p.inputShapes[0] as [number, number, number, number];
  const { kernel } = geometryOf(p.node);
  const [kh, kw] = kernel;
  const upsample = (t: string): string =>
    e.reshape(
      e.b.op('Expand', [
        e.reshape(t, [n, c, h / kh, 1, w / kw, 1]),
        e.ints([n, c, h / kh, kh, w / kw, kw]),
      ]),
      [n, c, h, w],
    );
  const x = p.node.inputs[0]!;
  const isMax = e.b.op('Equal', [x, upsample(p.node.outputs[0]!)]);
  return [[x, e.b.op('Where', [isMax, upsample(dy), e.scalar(0)])]];
};
