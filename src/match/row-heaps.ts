/** @file Per-row binary max-heaps with lazy deletion and a tournament over their tops, for the greedy matcher. */

/**
 * A priority queue over the pairs (g, h), g < h, of a [size, size] similarity matrix, split by
 * row: row g has its own binary max-heap of entries (key, partner h > g), and a tournament
 * tree over the rows' tops gives the best entry overall in O(1), O(log size) per change.
 *
 * Entries are not kept exact: the caller keeps each entry's key an upper bound of the pair's
 * current similarity (pushing a fresh entry when a similarity increases) and validates the
 * best entry against the matrix before using it, replacing or dropping it when stale. This is
 * lazy deletion with the similarity matrix itself as the version stamp.
 *
 * Order: larger key first, then the smaller pair code g * size + h. Within a row the code grows
 * with h, so comparing partners there is the same.
 *
 * Row g's entries live in the slots [rowStart[g], rowStart[g] + rowSize[g]) of two flat typed
 * arrays; its capacity is (size - 1 - g) plus a quarter of slack, and a full row is rebuilt
 * from the matrix with one exact entry per partner, which frees at least the slack, so pushes
 * cost O(log size) amortised.
 *
 * NOTE: one global heap over all pairs (lazy deletion, version-checked) was measured about 4x
 * slower at Kn = 4096 (4.4-5.6 s against 1.0-1.4 s): its 8M+ entries miss the cache at every
 * level, and the stale entries of every joined group surface one by one. Here a sift stays
 * within one row, and the tournament over row tops is small enough to stay in cache.
 */
export class RowHeaps {
  /** Entry keys, all rows back to back. */
  readonly keys: Float64Array;
  /** Entry partners (column indices), aligned with `keys`. */
  readonly partners: Int32Array;
  /** Number of entries per row. */
  readonly rowSize: Int32Array;
  /** Offset of each row's first slot in `keys` and `partners`. */
  readonly rowStart: Int32Array;
  private readonly rowCapacity: Int32Array;
  /** Tournament over rows: winner[node] is the best row under that node, -1 if none. */
  private readonly winner: Int32Array;
  private readonly leaves: number;
  /** Each row's top key and pair code, compact so that tournament updates stay in cache. */
  private readonly topKey: Float64Array;
  private readonly topCode: Int32Array;

  /** @param size - the matrix order (number of rows). */
  constructor(readonly size: number) {
    this.rowSize = new Int32Array(size);
    this.rowStart = new Int32Array(size);
    this.rowCapacity = new Int32Array(size);
    let total = 0;
    for (let g = 0; g < size; g++) {
      const partnersAbove = size - 1 - g;
      // NOTE: a quarter of slack bounds the rebuilds of a full row to one per (capacity / 4)
      // pushes, at 25% more memory.
      const capacity = partnersAbove + Math.max(8, Math.ceil(partnersAbove / 4));
      this.rowStart[g] = total;
      this.rowCapacity[g] = capacity;
      total += capacity;
    }
    this.keys = new Float64Array(total);
    this.partners = new Int32Array(total);
    let leaves = 1;
    while (leaves < size) leaves *= 2;
    this.leaves = leaves;
    this.winner = new Int32Array(2 * leaves).fill(-1);
    this.topKey = new Float64Array(size);
    this.topCode = new Int32Array(size);
  }

  /** The row holding the best entry, or -1 when every row is empty. */
  bestRow(): number {
    return this.winner[1]!;
  }

  /** Key of row g's top entry (rowSize[g] > 0). */
  topKeyOf(row: number): number {
    return this.keys[this.rowStart[row]!]!;
  }

  /** Partner of row g's top entry (rowSize[g] > 0). */
  topPartnerOf(row: number): number {
    return this.partners[this.rowStart[row]!]!;
  }

  /**
   * Replaces row g's entries by exact ones, (similarity[g * size + h], h) for each partner h in
   * `candidates[from..to)` (all > g), in O(to - from).
   */
  rebuild(
    row: number,
    similarity: Float64Array,
    candidates: Int32Array,
    from: number,
    to: number,
  ): void {
    const base = this.rowStart[row]!;
    const rowOffset = row * this.size;
    const count = to - from;
    for (let a = 0; a < count; a++) {
      const h = candidates[from + a]!;
      this.keys[base + a] = similarity[rowOffset + h]!;
      this.partners[base + a] = h;
    }
    this.rowSize[row] = count;
    for (let slot = (count >> 1) - 1; slot >= 0; slot--) {
      this.siftDown(base, count, slot, this.keys[base + slot]!, this.partners[base + slot]!);
    }
    this.refresh(row);
  }

  /** Whether row g has no free slot left (the caller then rebuilds it instead of pushing). */
  isFull(row: number): boolean {
    return this.rowSize[row] === this.rowCapacity[row];
  }

  /** Adds the entry (key, partner) to row g; the row must not be full. */
  push(row: number, partner: number, key: number): void {
    const base = this.rowStart[row]!;
    const keys = this.keys;
    const partners = this.partners;
    let hole = this.rowSize[row]!++;
    while (hole > 0) {
      const parent = (hole - 1) >> 1;
      const parentKey = keys[base + parent]!;
      if (parentKey > key || (parentKey === key && partners[base + parent]! < partner)) break;
      keys[base + hole] = parentKey;
      partners[base + hole] = partners[base + parent]!;
      hole = parent;
    }
    keys[base + hole] = key;
    partners[base + hole] = partner;
    if (hole === 0) this.refresh(row);
  }

  /** Lowers the key of row g's top entry (a stale upper bound) to `key`. */
  lowerTop(row: number, key: number): void {
    const base = this.rowStart[row]!;
    this.siftDown(base, this.rowSize[row]!, 0, key, this.partners[base]!);
    this.refresh(row);
  }

  /** Removes row g's top entry. */
  popTop(row: number): void {
    const base = this.rowStart[row]!;
    const last = --this.rowSize[row]!;
    if (last > 0)
      this.siftDown(base, last, 0, this.keys[base + last]!, this.partners[base + last]!);
    this.refresh(row);
  }

  /** Drops every entry of row g. */
  clear(row: number): void {
    this.rowSize[row] = 0;
    this.refresh(row);
  }

  private siftDown(base: number, count: number, slot: number, key: number, partner: number): void {
    const keys = this.keys;
    const partners = this.partners;
    let hole = slot;
    for (;;) {
      let child = 2 * hole + 1;
      if (child >= count) break;
      let childKey = keys[base + child]!;
      let childPartner = partners[base + child]!;
      if (child + 1 < count) {
        const rightKey = keys[base + child + 1]!;
        const rightPartner = partners[base + child + 1]!;
        if (rightKey > childKey || (rightKey === childKey && rightPartner < childPartner)) {
          child++;
          childKey = rightKey;
          childPartner = rightPartner;
        }
      }
      if (key > childKey || (key === childKey && partner < childPartner)) break;
      keys[base + hole] = childKey;
      partners[base + hole] = childPartner;
      hole = child;
    }
    keys[base + hole] = key;
    partners[base + hole] = partner;
  }

  /** Re-reads row g's top and replays the tournament from its leaf upwards. */
  private refresh(row: number): void {
    const empty = this.rowSize[row] === 0;
    if (!empty) {
      const base = this.rowStart[row]!;
      this.topKey[row] = this.keys[base]!;
      this.topCode[row] = row * this.size + this.partners[base]!;
    }
    const winner = this.winner;
    const topKey = this.topKey;
    const topCode = this.topCode;
    let node = this.leaves + row;
    winner[node] = empty ? -1 : row;
    node >>= 1;
    while (node >= 1) {
      const left = winner[2 * node]!;
      const right = winner[2 * node + 1]!;
      let best: number;
      if (left < 0) best = right;
      else if (right < 0) best = left;
      else {
        const leftKey = topKey[left]!;
        const rightKey = topKey[right]!;
        best =
          leftKey > rightKey || (leftKey === rightKey && topCode[left]! < topCode[right]!)
            ? left
            : right;
      }
      // Above a node whose winner is another, unchanged row, nothing can change.
      if (best === winner[node] && best !== row) break;
      winner[node] = best;
      node >>= 1;
    }
  }
}
