/** @file Tests of the seeded PRNG and shuffles. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32, permutation, randomInt, shuffleInPlace } from '../../src/data/random.js';

describe('mulberry32', () => {
  it('matches the reference mulberry32 stream (values from an independent Python port)', () => {
    const rng = mulberry32(42);
    assert.deepEqual(
      [rng(), rng(), rng()],
      [0.6011037519201636, 0.44829055899754167, 0.8524657934904099],
    );
    const zero = mulberry32(0);
    assert.deepEqual([zero(), zero()], [0.26642920868471265, 0.0003297457005828619]);
  });

  it('gives the same stream for the same seed and a different one for another seed', () => {
    const draw = (seed: number) => {
      const rng = mulberry32(seed);
      return Array.from({ length: 100 }, () => rng());
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  });

  it('stays in [0, 1) and spreads evenly over 10 buckets', () => {
    const rng = mulberry32(123);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const u = rng();
      assert.ok(u >= 0 && u < 1, `value ${u} outside [0, 1)`);
      buckets[randomInt(() => u, 10)]! += 1;
    }
    for (const n of buckets) assert.ok(Math.abs(n - 10_000) < 500, `bucket count ${n}`);
  });
});

describe('shuffles', () => {
  it('permutation is a permutation and is deterministic per seed', () => {
    const a = permutation(1000, 5);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.deepEqual(a, permutation(1000, 5));
    assert.notDeepEqual(a, permutation(1000, 6));
  });

  it('shuffleInPlace keeps the elements and handles 0 and 1 items', () => {
    const items = ['a', 'b', 'c', 'd', 'e'];
    const result = shuffleInPlace(items, mulberry32(1));
    assert.equal(result, items);
    assert.deepEqual([...items].sort(), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(shuffleInPlace([], mulberry32(1)), []);
    assert.deepEqual(shuffleInPlace([9], mulberry32(1)), [9]);
  });
});
