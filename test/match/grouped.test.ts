/**
 * @file Head-by-head matching against independent truth: each head's result is what the matcher
 * gives on that head's features alone (read here straight from the full correlation), mapped
 * back to the space's indices, and no merged feature joins two heads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchGrouped } from '../../src/match/grouped.js';
import { matchers } from '../../src/match/index.js';
import { randomCorrelation, seededRandom } from './helpers.js';

const K = 2;
const n = 12;
const heads = 3;
const d = n / heads;

describe('matchGrouped', () => {
  for (const method of ['zipit', 'permute'] as const)
    it(`${method}: every merged feature stays in its head, d per head in head order, each head matched as on its own`, () => {
      const correlation = randomCorrelation(seededRandom(4), K * n);
      const options = { alpha: 0.5, beta: 0.5 };
      const grouped = matchGrouped(matchers[method], correlation, K, n, heads, options);
      assert.ok(grouped.ok, grouped.ok ? '' : grouped.message);
      assert.equal(grouped.value.groups.length, n);
      const headOf = (f: number): number => Math.floor((f % n) / d);
      for (const [c, group] of grouped.value.groups.entries())
        for (const f of group) assert.equal(headOf(f), Math.floor(c / d), `feature ${f} of ${c}`);
      for (let h = 0; h < heads; h++) {
        const features = Array.from({ length: K * d }, (_, l) => {
          return Math.floor(l / d) * n + h * d + (l % d);
        });
        const sub = new Float64Array(K * d * K * d);
        for (const [a, fa] of features.entries())
          for (const [b, fb] of features.entries())
            sub[a * K * d + b] = correlation[fa * K * n + fb]!;
        const alone = matchers[method](sub, K, d, options);
        assert.ok(alone.ok);
        assert.deepEqual(
          grouped.value.groups.slice(h * d, (h + 1) * d),
          alone.value.groups.map((g) => g.map((l) => features[l]!)),
        );
      }
    });

  it('EXPECTED FAILURE - a width that does not split into the heads, or a merged width, is refused', () => {
    const correlation = randomCorrelation(seededRandom(1), K * n);
    const odd = matchGrouped(matchers.zipit, correlation, K, n, 5, { alpha: 0.5, beta: 0 });
    assert.equal(odd.ok, false);
    assert.match(odd.ok ? '' : odd.message, /^12 channels do not split into 5 heads\.$/);
    const narrower = matchGrouped(matchers.zipit, correlation, K, n, heads, {
      alpha: 0.5,
      beta: 0,
      mergedWidth: 8,
    });
    assert.equal(narrower.ok, false);
    assert.match(narrower.ok ? '' : narrower.message, /--merged-width cannot change it/);
  });
});
