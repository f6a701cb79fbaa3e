/**
 * @file Matching attention heads to heads: models trained from different initialisations have
 * no reason to number their heads alike, so before matching channels within heads, each model's
 * heads are reordered to face model 0's most similar ones. One order per attention, shared by
 * its Q/K and V spaces (head h's scores weigh head h's values).
 */
import { solveAssignment } from './assignment.js';

/** Correlations of one attention's spaces ([Kn, Kn] each, model-major), all of width n in h heads. */
export interface HeadSpaces {
  readonly correlations: readonly Float64Array[];
  readonly numModels: number;
  readonly width: number;
  readonly heads: number;
}

/**
 * How well head `g` of model 0 and head `h` of model `k` correspond: for each space, the best
 * one-to-one pairing of their channels (a linear assignment on the correlation block), summed.
 */
function headSimilarity(spaces: HeadSpaces, k: number, g: number, h: number): number {
  const { numModels, width, heads } = spaces;
  const d = width / heads;
  const total = numModels * width;
  let score = 0;
  for (const correlation of spaces.correlations) {
    const cost = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) {
        const r = correlation[(g * d + i) * total + k * width + h * d + j]!;
        // -Infinity (never join) and NaN-free inputs: a pair that may not join costs the most.
        cost[i * d + j] = Number.isFinite(r) ? -r : 1e9;
      }
    const column = solveAssignment(cost, d);
    for (let i = 0; i < d; i++) score -= cost[i * d + column[i]!]!;
  }
  return score;
}

/**
 * Per model, the order of its heads that best faces model 0's: `order[k][g]` is the head of
 * model k placed at position g (model 0's order is the identity). A linear assignment over the
 * heads of the summed {@link headSimilarity}.
 */
export function headOrders(spaces: HeadSpaces): Int32Array[] {
  const { numModels, heads } = spaces;
  const orders: Int32Array[] = [Int32Array.from({ length: heads }, (_, g) => g)];
  for (let k = 1; k < numModels; k++) {
    const cost = new Float64Array(heads * heads);
    for (let g = 0; g < heads; g++)
      for (let h = 0; h < heads; h++) cost[g * heads + h] = -headSimilarity(spaces, k, g, h);
    orders.push(solveAssignment(cost, heads));
  }
  return orders;
}

/**
 * The feature index map of `orders` for a space of width n in `heads` heads: position p of the
 * reordered space (model-major, K * n) holds original feature `map[p]`.
 */
export function headOrderMap(
  orders: readonly Int32Array[],
  width: number,
  heads: number,
): Int32Array {
  const d = width / heads;
  const map = new Int32Array(orders.length * width);
  for (const [k, order] of orders.entries())
    for (let g = 0; g < heads; g++)
      for (let j = 0; j < d; j++) map[k * width + g * d + j] = k * width + order[g]! * d + j;
  return map;
}

/** The correlation with its features reordered by `map` (position p holds feature map[p]). */
export function reorderCorrelation(correlation: Float64Array, map: Int32Array): Float64Array {
  const total = map.length;
  const out = new Float64Array(total * total);
  for (let a = 0; a < total; a++) {
    const row = map[a]! * total;
    for (let b = 0; b < total; b++) out[a * total + b] = correlation[row + map[b]!]!;
  }
  return out;
}
