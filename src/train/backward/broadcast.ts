/** @file Sums a broadcast op's output gradient back to the shape of one of its inputs. */
import type { Emitter } from '../emitter.js';

/**
 * `dy` (shaped `outShape`) summed over the axes along which `inShape` was broadcast, shaped
 * `inShape`: the gradient of an input that numpy broadcasting stretched.
 */
export function unbroadcast(
  e: Emitter,
  dy: string,
  outShape: readonly number[],
  inShape: readonly number[],
): string {
  const offset = outShape.length - inShape.length;
  const axes = outShape
    .map((_, i) => i)
    .filter((i) => i < offset || (inShape[i - offset] === 1 && outShape[i] !== 1));
  if (axes.length === 0) return dy;
  const summed = e.b.op('ReduceSum', [dy, e.ints(axes)], { keepdims: 1 });
  return offset === 0 ? summed : e.reshape(summed, inShape);
}
