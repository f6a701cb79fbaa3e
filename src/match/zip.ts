/** @file ZipIt!'s greedy matcher: repeatedly join the most correlated pair of feature groups. */
import { fail, ok } from '../errors.js';
import { RowHeaps } from './row-heaps.js';
import { checkMatchArguments, type Matcher, type Matching } from './types.js';

/** Above this many features a pair code (row * Kn + column) would overflow an Int32. */
const MAX_FEATURES = 46340;

/**
 * ZipIt! matching (ALGORITHM.md, "Matching"): the reference's `match_tensors_zipit`, with the
 * same floating-point operations, so that its golden outputs are reproduced exactly (bar the
 * quirk below).
 *
 * Start from Kn singleton groups. While more than m groups remain, join the pair with the
 * largest similarity into the one at the lower position (a group's position is its lowest
 * member, so positions keep their order). The joined group's similarity to every other group g
 * becomes alpha * min(s_ig, s_jg); with alpha <= 0 it becomes -Infinity towards every group
 * whose origin is one of the two joined groups' origins (it is never matched again with those
 * models) and min(s_ig, s_jg) towards the others. A group's origin is its lowest member's model.
 * Joining two groups of the same origin spends one unit of that model's budget
 * floor(floor((Kn - m) / K) * beta); once a model's budget is spent, every similarity between
 * two groups of that origin is -Infinity.
 *
 * Ties go to the lexicographically first pair of positions (lower, higher), which is what the
 * reference's `argmax` over the flattened similarity matrix picks. If only -Infinity pairs
 * remain, the same rule joins the two lowest positions.
 *
 * Deviations from the reference, by design, each where it does something unintended:
 * - when only -Infinity pairs remain, its flat argmax lands on the diagonal entry (0, 0) and
 *   the group at position 0 is deleted, so its features belong to no merged feature; we join
 *   the two lowest positions instead, so that every feature stays in exactly one group (this
 *   happens when small budgets block all remaining pairs, e.g. K = 3 with beta = 0.125);
 * - a model whose budget is 0 from the start is never allowed a same-model join (the
 *   reference lets one through);
 * - with alpha <= 0 the blocked groups are found by origin (the reference indexes a fixed
 *   block of current positions, which shifts as groups are removed).
 *
 * Cost: O((Kn)^2 log Kn) time and O((Kn)^2) memory (see {@link RowHeaps}).
 */
export const zipMatch: Matcher = (correlation, numModels, width, options) => {
  const checked = checkMatchArguments(correlation, numModels, width, options);
  if (!checked.ok) return checked;
  const { total, mergedWidth } = checked.value;
  if (total > MAX_FEATURES) {
    return fail('out-of-memory', `Expected at most ${MAX_FEATURES} features to zip, got ${total}`);
  }
  return ok(greedyZip(correlation, numModels, width, mergedWidth, options.alpha, options.beta));
};

/** The same-model budget per model: floor(floor((Kn - m) / K) * beta). */
export function sameModelBudget(
  numModels: number,
  width: number,
  mergedWidth: number,
  beta: number,
): number {
  const joins = numModels * width - mergedWidth;
  // NOTE: + 1e-4 like the reference, so that e.g. 10 * 0.3 = 2.9999999999999996 counts as 3.
  return Math.floor(Math.floor(joins / numModels) * beta + 1e-4);
}

function greedyZip(
  correlation: Float64Array,
  numModels: number,
  width: number,
  mergedWidth: number,
  alpha: number,
  beta: number,
): Matching {
  const total = numModels * width;
  // Current similarity between groups, indexed by the groups' representatives (lowest
  // members); kept symmetric so that a group's row is contiguous. [Kn, Kn]
  const sims = symmetricFromUpper(correlation, total);

  const origin = new Int32Array(total);
  for (let f = 0; f < total; f++) origin[f] = Math.floor(f / width);
  const budget = new Int32Array(numModels).fill(
    sameModelBudget(numModels, width, mergedWidth, beta),
  );
  const killed = new Uint8Array(numModels);

  // Alive representatives in ascending order: index in this list = the group's position.
  const order = new Int32Array(total);
  for (let f = 0; f < total; f++) order[f] = f;
  let count = total;
  const alive = new Uint8Array(total).fill(1);
  // Members of each group as a linked list through `next`, appended in O(1) via `tail`.
  const next = new Int32Array(total).fill(-1);
  const tail = new Int32Array(total);
  for (let f = 0; f < total; f++) tail[f] = f;

  /** Sets every similarity between two alive groups of origin `model` to -Infinity. */
  const kill = (model: number): void => {
    killed[model] = 1;
    for (let a = 0; a < count; a++) {
      const g = order[a]!;
      if (origin[g] !== model) continue;
      for (let b = a + 1; b < count; b++) {
        const h = order[b]!;
        if (origin[h] !== model) continue;
        sims[g * total + h] = -Infinity;
        sims[h * total + g] = -Infinity;
      }
    }
  };
  for (let k = 0; k < numModels; k++) if (budget[k]! <= 0) kill(k);

  // The heaps hold upper bounds of current similarities, validated against `sims` when they
  // surface (see RowHeaps). -Infinity pairs stay in the heaps, so when nothing else is left they
  // tie and the first pair in position order wins, as everywhere else.
  const heaps = new RowHeaps(total);
  for (let a = 0; a < count; a++) heaps.rebuild(order[a]!, sims, order, a + 1, count);

  let sameModelMerges = 0;
  let crossModelMerges = 0;
  while (count > mergedWidth) {
    let keep = -1;
    let drop = -1;
    while (keep < 0) {
      const row = heaps.bestRow();
      // The lowest alive group always has an entry for each alive partner above it.
      if (row < 0) throw new Error('zip: priority queue empty with groups left to join');
      const partner = heaps.topPartnerOf(row);
      if (alive[partner] === 0) {
        heaps.popTop(row);
        continue;
      }
      const current = sims[row * total + partner]!;
      // A key above the current similarity is a stale upper bound: lower it and look again.
      if (current < heaps.topKeyOf(row)) heaps.lowerTop(row, current);
      else {
        keep = row;
        drop = partner;
      }
    }

    const keepOrigin = origin[keep]!;
    const dropOrigin = origin[drop]!;
    if (keepOrigin === dropOrigin) sameModelMerges++;
    else crossModelMerges++;

    next[tail[keep]!] = drop;
    tail[keep] = tail[drop]!;
    alive[drop] = 0;
    heaps.clear(drop);
    removeSorted(order, count, drop);
    count--;

    const keepRow = keep * total;
    const dropRow = drop * total;
    let keepPosition = -1;
    for (let a = 0; a < count; a++) {
      const g = order[a]!;
      if (g === keep) {
        keepPosition = a;
        continue;
      }
      const s = sims[keepRow + g]!;
      const t = sims[dropRow + g]!;
      const low = t < s ? t : s;
      let joined: number;
      if (alpha > 0) joined = alpha * low;
      else joined = origin[g] === keepOrigin || origin[g] === dropOrigin ? -Infinity : low;
      sims[keepRow + g] = joined;
      sims[g * total + keep] = joined;
      // The pair lives in row g when g < keep. A lower similarity leaves its entry a valid upper
      // bound; a higher one (possible when min(...) < 0 and alpha < 1) needs a fresh entry.
      if (g < keep && joined > s) {
        if (heaps.isFull(g)) heaps.rebuild(g, sims, order, a + 1, count);
        else heaps.push(g, keep, joined);
      }
    }
    heaps.rebuild(keep, sims, order, keepPosition + 1, count);

    if (keepOrigin === dropOrigin) {
      budget[keepOrigin]!--;
      // Lowering similarities to -Infinity needs no heap work: the entries become stale upper
      // bounds. Once killed, they stay -Infinity, since a min with -Infinity is -Infinity.
      if (budget[keepOrigin]! <= 0 && killed[keepOrigin] === 0) kill(keepOrigin);
    }
  }

  const groups: number[][] = [];
  for (let a = 0; a < count; a++) {
    const members: number[] = [];
    for (let f = order[a]!; f >= 0; f = next[f]!) members.push(f);
    groups.push(members.sort((x, y) => x - y));
  }
  return { numModels, width, mergedWidth, groups, sameModelMerges, crossModelMerges };
}

/**
 * A copy of a [size, size] matrix whose lower triangle mirrors its upper one, with -Infinity on
 * the diagonal (a group is never joined with itself).
 */
function symmetricFromUpper(matrix: Float64Array, size: number): Float64Array {
  const result = Float64Array.from(matrix);
  // NOTE: mirrored in tiles so that the column-wise writes stay in cache.
  const tile = 64;
  for (let rowTile = 0; rowTile < size; rowTile += tile) {
    for (let columnTile = rowTile; columnTile < size; columnTile += tile) {
      const rowEnd = Math.min(rowTile + tile, size);
      const columnEnd = Math.min(columnTile + tile, size);
      for (let i = rowTile; i < rowEnd; i++) {
        for (let j = Math.max(columnTile, i + 1); j < columnEnd; j++) {
          result[j * size + i] = matrix[i * size + j]!;
        }
      }
    }
  }
  for (let i = 0; i < size; i++) result[i * size + i] = -Infinity;
  return result;
}

/** Removes `value` from the ascending prefix [0, length) of `list`, shifting the rest left. */
function removeSorted(list: Int32Array, length: number, value: number): void {
  let low = 0;
  let high = length - 1;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (list[mid]! < value) low = mid + 1;
    else high = mid;
  }
  list.copyWithin(low, low + 1, length);
}
