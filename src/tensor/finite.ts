/** @file Whether an array holds only finite numbers (no NaN, no ±Infinity). */

/** True when every value is finite; an empty array is. */
export function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false;
  return true;
}
