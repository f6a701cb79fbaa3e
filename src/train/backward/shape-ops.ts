/** @file Backward rule of Flatten: the output gradient reshaped back to the input's shape. */
import type { GradientRule } from './types.js';

/** dX = dY reshaped to X's shape. */
export const flattenGradient: GradientRule = ({ e, p, dy }) => [
  [p.node.inputs[0]!, e.reshape(dy, p.inputShapes[0]!)],
];
