/** @file RowHeaps: random operations against a plain list model of the same priority queue. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { RowHeaps } from '../../src/match/row-heaps.js';
import { seededRandom } from './helpers.js';

interface Entry {
  key: number;
  partner: number;
}

/** Larger key first, then the smaller pair code (row * size + partner). */
function before(size: number, a: Entry & { row: number }, b: Entry & { row: number }): boolean {
  return a.key > b.key || (a.key === b.key && a.row * size + a.partner < b.row * size + b.partner);
}

it('keeps every row top and the best row equal to a list model under random operations', () => {
  const random = seededRandom(42);
  const size = 9;
  const heaps = new RowHeaps(size);
  const model: Entry[][] = Array.from({ length: size }, () => []);
  const similarity = new Float64Array(size * size);
  const candidates = Int32Array.from({ length: size }, (_, h) => h);
  // Keys from a few levels, so that ties are frequent.
  const randomKey = (): number => (random() < 0.1 ? -Infinity : Math.floor(random() * 5) / 4);

  const modelTop = (row: number): Entry | undefined => {
    let best: Entry | undefined;
    for (const e of model[row]!) {
      if (best === undefined || before(size, { ...e, row }, { ...best, row })) best = e;
    }
    return best;
  };

  for (let step = 0; step < 5000; step++) {
    const row = Math.floor(random() * (size - 1));
    const action = random();
    if (action < 0.05) {
      for (let h = row + 1; h < size; h++) similarity[row * size + h] = randomKey();
      const from = row + 1 + Math.floor(random() * (size - row - 1));
      heaps.rebuild(row, similarity, candidates, from, size);
      model[row] = [];
      for (let h = from; h < size; h++)
        model[row]!.push({ key: similarity[row * size + h]!, partner: h });
    } else if (action < 0.55) {
      if (heaps.isFull(row)) {
        assert.ok(model[row]!.length >= size - 1 - row, 'full before the capacity');
        continue;
      }
      const partner = row + 1 + Math.floor(random() * (size - row - 1));
      const key = randomKey();
      heaps.push(row, partner, key);
      model[row]!.push({ key, partner });
    } else if (model[row]!.length > 0) {
      const top = modelTop(row)!;
      if (action < 0.8) {
        heaps.popTop(row);
        model[row]!.splice(model[row]!.indexOf(top), 1);
      } else if (action < 0.95) {
        const key = top.key === -Infinity ? -Infinity : top.key - Math.floor(random() * 3) / 4;
        heaps.lowerTop(row, key);
        top.key = key;
      } else {
        heaps.clear(row);
        model[row] = [];
      }
    }

    let best: (Entry & { row: number }) | undefined;
    for (let g = 0; g < size; g++) {
      assert.equal(heaps.rowSize[g], model[g]!.length, `size of row ${g} at step ${step}`);
      const top = modelTop(g);
      if (top === undefined) continue;
      assert.equal(heaps.topKeyOf(g), top.key, `top key of row ${g} at step ${step}`);
      assert.equal(heaps.topPartnerOf(g), top.partner, `top partner of row ${g} at step ${step}`);
      if (best === undefined || before(size, { ...top, row: g }, best)) best = { ...top, row: g };
    }
    assert.equal(heaps.bestRow(), best?.row ?? -1, `best row at step ${step}`);
  }
});
