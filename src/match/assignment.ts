/** @file Exact linear assignment (shortest augmenting paths with potentials, O(n^3)). */

/**
 * Solves the n x n linear assignment problem min sum_i cost[i, columnOf[i]] exactly.
 *
 * Jonker-Volgenant style: a column reduction gives feasible potentials and a partial
 * assignment, then each free row is assigned along a shortest augmenting path (Dijkstra on
 * reduced costs, which the potentials keep non-negative), following Crouse (2016), the method
 * of scipy's `linear_sum_assignment`. O(n^3) time worst case, O(n) extra memory.
 *
 * @param cost - [n, n] row-major, finite.
 * @returns columnOf: row i is assigned column columnOf[i] (a permutation of 0..n-1).
 */
export function solveAssignment(cost: Float64Array, n: number): Int32Array {
  if (cost.length !== n * n)
    throw new RangeError(`cost has ${cost.length} entries, expected ${n} x ${n}`);
  const rowPotential = new Float64Array(n);
  const columnPotential = new Float64Array(n).fill(Infinity);
  const columnOf = new Int32Array(n).fill(-1);
  const rowOf = new Int32Array(n).fill(-1);

  // Column reduction: v_j = min_i c_ij (row-wise pass, so the reads stay contiguous). With
  // u = 0 every reduced cost c_ij - u_i - v_j is >= 0, and 0 on each column's minimum.
  const argmin = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const c = cost[row + j]!;
      if (c < columnPotential[j]!) {
        columnPotential[j] = c;
        argmin[j] = i;
      }
    }
  }
  for (let j = 0; j < n; j++) {
    const i = argmin[j]!;
    if (columnOf[i] === -1) {
      columnOf[i] = j;
      rowOf[j] = i;
    }
  }

  const distance = new Float64Array(n); // shortest reduced path cost to each column
  const via = new Int32Array(n); // the row from which each column was reached
  const remaining = new Int32Array(n); // columns not yet settled in this search
  const settled = new Int32Array(n); // settled columns, in order
  for (let start = 0; start < n; start++) {
    if (columnOf[start] !== -1) continue;
    distance.fill(Infinity);
    for (let j = 0; j < n; j++) remaining[j] = j;
    let remainingCount = n;
    let settledCount = 0;
    let pathLength = 0;
    let row = start;
    let sink = -1;
    while (sink < 0) {
      const rowBase = row * n;
      const offset = pathLength - rowPotential[row]!;
      let lowest = Infinity;
      let lowestAt = -1;
      for (let t = 0; t < remainingCount; t++) {
        const j = remaining[t]!;
        const reduced = offset + cost[rowBase + j]! - columnPotential[j]!;
        if (reduced < distance[j]!) {
          distance[j] = reduced;
          via[j] = row;
        }
        const d = distance[j]!;
        // Prefer a free column on ties: the search can stop there.
        if (d < lowest || (d === lowest && rowOf[j] === -1)) {
          lowest = d;
          lowestAt = t;
        }
      }
      if (lowestAt < 0) throw new Error('assignment: no augmenting path (non-finite cost?)');
      pathLength = lowest;
      const column = remaining[lowestAt]!;
      remaining[lowestAt] = remaining[--remainingCount]!;
      settled[settledCount++] = column;
      if (rowOf[column] === -1) sink = column;
      else row = rowOf[column]!;
    }

    // Potentials: keep reduced costs non-negative and tight along the new matching.
    rowPotential[start] = rowPotential[start]! + pathLength;
    for (let s = 0; s < settledCount; s++) {
      const column = settled[s]!;
      const delta = pathLength - distance[column]!;
      columnPotential[column] = columnPotential[column]! - delta;
      const matchedRow = rowOf[column]!;
      if (matchedRow >= 0) rowPotential[matchedRow] = rowPotential[matchedRow]! + delta;
    }

    // Augment: flip the matching along the path back to `start`.
    let column = sink;
    for (;;) {
      const from = via[column]!;
      rowOf[column] = from;
      const previous = columnOf[from]!;
      columnOf[from] = column;
      if (from === start) break;
      column = previous;
    }
  }
  return columnOf;
}
