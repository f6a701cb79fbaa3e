/** @file The matcher registry and the validation of matching options, including every user error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CORRELATION_METHODS,
  matchers,
  MATCH_METHODS,
  parseMatchOptions,
} from '../../src/match/index.js';
import { DEFAULT_MATCH_OPTIONS } from '../../src/match/types.js';

const identity4 = Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

describe('matchers registry', () => {
  it('has one matcher per correlation method, all following the same contract', () => {
    assert.deepEqual(Object.keys(matchers).sort(), [...CORRELATION_METHODS].sort());
    // Weight matching (merge/weight-matching.ts) and CCA merge (merge/cca.ts) are the methods
    // without a correlation matcher.
    assert.deepEqual(
      MATCH_METHODS.filter((m) => !(CORRELATION_METHODS as readonly string[]).includes(m)),
      ['weights', 'cca'],
    );
    for (const method of CORRELATION_METHODS) {
      const result = matchers[method](identity4, 2, 2, DEFAULT_MATCH_OPTIONS);
      assert.ok(result.ok, method);
      assert.equal(result.value.groups.length, 2, method);
    }
  });
});

describe('parseMatchOptions', () => {
  it('defaults to zipit with the reference hyper-parameters', () => {
    assert.deepEqual(parseMatchOptions({}), {
      ok: true,
      value: { method: 'zipit', options: { alpha: 0.3, beta: 0.125 } },
    });
  });

  it('accepts CLI strings and the interval ends', () => {
    assert.deepEqual(
      parseMatchOptions({ method: 'permute', alpha: '0', beta: '1', mergedWidth: '64' }),
      { ok: true, value: { method: 'permute', options: { alpha: 0, beta: 1, mergedWidth: 64 } } },
    );
  });

  const failures: [string, Parameters<typeof parseMatchOptions>[0], string][] = [
    ['alpha above 1', { alpha: 1.5 }, 'Expected --alpha to be in [0, 1], got 1.5'],
    ['alpha below 0', { alpha: '-0.1' }, 'Expected --alpha to be in [0, 1], got -0.1'],
    ['alpha not a number', { alpha: 'abc' }, 'Expected --alpha to be in [0, 1], got abc'],
    ['alpha NaN', { alpha: Number.NaN }, 'Expected --alpha to be in [0, 1], got NaN'],
    ['beta above 1', { beta: 2 }, 'Expected --beta to be in [0, 1], got 2'],
    ['beta empty', { beta: '' }, 'Expected --beta to be in [0, 1], got '],
    [
      'unknown method',
      { method: 'optimal' },
      "Expected --method to be 'zipit', 'permute', 'wavg', 'weights' or 'cca', got 'optimal'",
    ],
    [
      'merged width 0',
      { mergedWidth: 0 },
      'Expected --merged-width to be a positive integer, got 0',
    ],
    [
      'merged width fractional',
      { mergedWidth: '2.5' },
      'Expected --merged-width to be a positive integer, got 2.5',
    ],
  ];
  for (const [what, raw, message] of failures) {
    it(`EXPECTED FAILURE - ${what}`, () => {
      assert.deepEqual(parseMatchOptions(raw), { ok: false, reason: 'bad-argument', message });
    });
  }
});

describe('matcher argument checks', () => {
  it('EXPECTED FAILURE - alpha out of range passed straight to a matcher', () => {
    for (const method of CORRELATION_METHODS) {
      const result = matchers[method](identity4, 2, 2, { alpha: 1.5, beta: 0.5 });
      assert.deepEqual(result, {
        ok: false,
        reason: 'bad-argument',
        message: 'Expected --alpha to be in [0, 1], got 1.5',
      });
    }
  });

  it('EXPECTED FAILURE - beta out of range passed straight to a matcher', () => {
    const result = matchers.zipit(identity4, 2, 2, { alpha: 0.3, beta: -1 });
    assert.deepEqual(result, {
      ok: false,
      reason: 'bad-argument',
      message: 'Expected --beta to be in [0, 1], got -1',
    });
  });

  it('EXPECTED FAILURE - a correlation of the wrong size', () => {
    const result = matchers.zipit(new Float64Array(15), 2, 2, DEFAULT_MATCH_OPTIONS);
    assert.deepEqual(result, {
      ok: false,
      reason: 'bad-shape',
      message: 'Expected a correlation matrix of 2 x 2 = 4 features (16 entries), got 15 entries',
    });
  });

  it('EXPECTED FAILURE - NaN in the correlation', () => {
    const correlation = Float64Array.from(identity4);
    correlation[1 * 4 + 3] = Number.NaN;
    const result = matchers.zipit(correlation, 2, 2, DEFAULT_MATCH_OPTIONS);
    assert.deepEqual(result, {
      ok: false,
      reason: 'bad-statistics',
      message:
        'Expected finite correlations, got NaN between features 1 and 3; ' +
        'build the correlation with correlationFromCovariance',
    });
  });

  it('EXPECTED FAILURE - a merged width outside [1, Kn] for zipit, or other than n for permute/wavg', () => {
    assert.deepEqual(
      matchers.zipit(identity4, 2, 2, { ...DEFAULT_MATCH_OPTIONS, mergedWidth: 5 }),
      {
        ok: false,
        reason: 'bad-argument',
        message: 'Expected --merged-width to be an integer in [1, 4], got 5',
      },
    );
    assert.deepEqual(
      matchers.permute(identity4, 2, 2, { ...DEFAULT_MATCH_OPTIONS, mergedWidth: 3 }),
      {
        ok: false,
        reason: 'bad-argument',
        message: 'Expected --merged-width to be 2 (the per-model width) for permute, got 3',
      },
    );
    assert.deepEqual(matchers.wavg(identity4, 2, 2, { ...DEFAULT_MATCH_OPTIONS, mergedWidth: 1 }), {
      ok: false,
      reason: 'bad-argument',
      message: 'Expected --merged-width to be 2 (the per-model width) for wavg, got 1',
    });
  });

  it('EXPECTED FAILURE - a non-positive number of models or width', () => {
    assert.deepEqual(matchers.zipit(new Float64Array(0), 0, 2, DEFAULT_MATCH_OPTIONS), {
      ok: false,
      reason: 'bad-argument',
      message: 'Expected the number of models to be a positive integer, got 0',
    });
    assert.deepEqual(matchers.permute(new Float64Array(0), 2, 0, DEFAULT_MATCH_OPTIONS), {
      ok: false,
      reason: 'bad-argument',
      message: 'Expected the feature width to be a positive integer, got 0',
    });
  });
});
