/** @file What shape inference knows about one value: its shape, and for small integer tensors its contents. */
import type { Dim } from '../onnx/model.js';

/**
 * A value's static knowledge. `shape` uses symbolic names for dynamic dimensions (the batch).
 * `known` holds the elements of small int64 tensors (shapes, indices) as numbers or symbols,
 * which is what lets `x.view(x.size(0), -1)` chains fold to a constant Reshape.
 */
export interface ValueState {
  readonly shape: readonly Dim[];
  readonly known?: readonly (number | string)[];
  /** True when the value is an initializer or computed only from initializers. */
  readonly constant?: boolean;
}

/** A shape as text, for messages: [N, 64, 7, 7]. */
export function formatShape(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** The product of static dims, or undefined if any is symbolic. */
export function staticSize(shape: readonly Dim[]): number | undefined {
  let size = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    size *= d;
  }
  return size;
}
