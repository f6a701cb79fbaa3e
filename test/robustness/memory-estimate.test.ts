/** @file The statistics' memory estimate: exact on a hand case, read from a graph, and the refusal message. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import {
  checkMemoryBudget,
  estimateStatisticsMemory,
  spaceSizes,
} from '../../src/merge/memory-estimate.js';
import { zooModel } from '../helpers.js';

test('the estimate counts K-stacked float64 accumulators, kept correlations, transients and one batch', () => {
  // K = 2, widths 3 and 5: Kn = 6 and 10.
  const estimate = estimateStatisticsMemory(
    2,
    [
      { id: 1, width: 3, positionsPerSample: 4 },
      { id: 2, width: 5, positionsPerSample: 1 },
    ],
    10,
  );
  assert.equal(estimate.accumulators, 8 * (36 + 12) + 8 * (100 + 20));
  assert.equal(estimate.correlations, 8 * 136);
  assert.equal(estimate.transient, 16 * 100);
  assert.equal(estimate.activations, 4 * 2 * 10 * (3 * 4 + 5));
  assert.equal(
    estimate.total,
    estimate.accumulators + estimate.correlations + estimate.transient + estimate.activations,
  );
  assert.deepEqual(estimate.largestSpace, { id: 2, width: 5 });
  assert.equal(estimateStatisticsMemory(3, [], 128).total, 0);
});

test('spaceSizes reads widths and site positions from the graph (ResNet-20: 28x28, 14x14, 7x7 streams)', () => {
  const graph = analyzeGraph(zooModel('resnet20'));
  assert.ok(graph.ok);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok);
  const sizes = spaceSizes(graph.value, spaces.value.spaces);
  assert.equal(sizes.length, 12);
  const positions = new Set(sizes.map((s) => s.positionsPerSample));
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    [1, 49, 196, 784],
  );
  // Memory grows with K^2 for the quadratic terms.
  const two = estimateStatisticsMemory(2, sizes, 128);
  const four = estimateStatisticsMemory(4, sizes, 128);
  assert.equal(four.accumulators > 3.9 * two.accumulators, true);
});

test('EXPECTED FAILURE - not enough memory for the statistics names the flag that reduces it', () => {
  const wide = estimateStatisticsMemory(8, [{ id: 4, width: 2048, positionsPerSample: 1 }], 16);
  const refused = checkMemoryBudget(wide, 8, 1e9);
  assert.ok(!refused.ok);
  assert.equal(refused.reason, 'out-of-memory');
  assert.equal(
    refused.message,
    'Merging 8 models needs about 8.6 GB for statistics, more than the 1.0 GB available; ' +
      'the widest space, 4, has 2048 channels; zip fewer spaces with --stop-at, or merge fewer models at once.',
  );
  const activations = estimateStatisticsMemory(
    2,
    [{ id: 1, width: 64, positionsPerSample: 50176 }],
    512,
  );
  const batch = checkMemoryBudget(activations, 2, 1e9);
  assert.ok(!batch.ok);
  assert.match(batch.message, /lower --batch/);
  assert.ok(checkMemoryBudget(wide, 8, 1e12).ok);
});
