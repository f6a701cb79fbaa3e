/**
 * @file The merge's memory estimate: exact on a hand case, against measured peaks of the
 * wide-MLP merges of issue 15, read from a graph, wavg without statistics, the default limit,
 * and the refusal message.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import {
  checkMemoryBudget,
  defaultMemoryLimit,
  estimateStatisticsMemory,
  spaceSizes,
} from '../../src/merge/memory-estimate.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { syntheticData } from '../exporters/helpers.js';
import { zooModel } from '../helpers.js';

test('the estimate is the peak over the pass, each finalize and each matching, by method', () => {
  // K = 2, widths 3 and 5: Kn = 6 and 10.
  const spaces = [
    { id: 1, width: 3, positionsPerSample: 4 },
    { id: 2, width: 5, positionsPerSample: 1 },
  ];
  const estimate = estimateStatisticsMemory(2, spaces, 10);
  assert.equal(estimate.accumulators, 8 * (36 + 12) + 8 * (100 + 20));
  assert.equal(estimate.correlations, 8 * 136);
  assert.equal(estimate.transient, 16 * 100);
  assert.equal(estimate.activations, 4 * 2 * 10 * (3 * 4 + 5));
  // ZipIt! on Kn = 10: a float64 copy, and heaps of (p + 8) entries for p = 9..0 partners, 12 B each.
  assert.equal(estimate.matcher, 8 * 100 + 12 * (45 + 80));
  assert.equal(estimate.models, 0);
  // Phases: the pass 1344 + 1600 + 1360 = 4304; finalize 1 1344 + 576; match 1 960 + 288 +
  // 288 + 1044; finalize 2 960 + 288 + 1600; match 2 0 + 1088 + 800 + 2300 = 4188 (the middle
  // term is the released buffer V8 has not freed yet). The pass is the peak.
  assert.equal(estimate.total, 4304);
  assert.deepEqual(estimate.largestSpace, { id: 2, width: 5 });
  // Dual-space matching keeps every correlation (1088) and every mixed matrix (1088) while the
  // matcher (2300) runs: 4476, above the pass.
  assert.equal(estimateStatisticsMemory(2, spaces, 10, { weightSimilarity: true }).total, 4476);
  // Permute's: 2176 + the widest Gram or cosine (800) = 2976, below the pass; wavg reads none.
  const dualPermute = { method: 'permute', weightSimilarity: true } as const;
  assert.equal(estimateStatisticsMemory(2, spaces, 10, dualPermute).total, 4304);
  // Permute's matcher is an n x n cost matrix; wavg reads no statistics at all.
  assert.equal(estimateStatisticsMemory(2, spaces, 10, { method: 'permute' }).matcher, 8 * 25);
  const wavg = estimateStatisticsMemory(2, spaces, 10, { method: 'wavg', modelBytes: 1e6 });
  assert.equal(wavg.accumulators + wavg.correlations + wavg.transient + wavg.matcher, 0);
  assert.equal(wavg.total, 190e6 + 5e6 + 1360);
  // Weight matching reads no statistics either: its working set is the widest space's two n x n
  // float64 matrices and 24 bytes per element of one model's largest weight (bounded by its 0.5 MB).
  const weights = estimateStatisticsMemory(2, spaces, 10, { method: 'weights', modelBytes: 1e6 });
  assert.equal(weights.accumulators + weights.correlations + weights.transient, 0);
  assert.equal(weights.matcher, 16 * 25 + 6 * 0.5e6);
  assert.equal(weights.total, 190e6 + 5e6 + 16 * 25 + 6 * 0.5e6);
  assert.equal(estimateStatisticsMemory(3, [], 128).total, 0);
});

/**
 * Peaks measured with `/usr/bin/time -v` (maximum resident set size) on two 784-n-10 MLPs from
 * `node --import tsx bench/hostile-models.ts wide-mlp <n> <seed> <file>` (seeds 1 and 2), merged
 * with `zipit merge a.onnx b.onnx --out m.onnx --mean 0.286 --std 0.353 --samples 100
 * --method <m>` on one machine (Node 20, 2 cores); `dual` adds `--weight-similarity 0.25 --logits
 * raw` (measured 2026-11-30 beside two training jobs, which changes time, not memory).
 */
const MEASURED = [
  { width: 4000, method: 'zipit', peakKiB: 2243264, dual: true },
  { width: 4000, method: 'zipit', peakKiB: 2205676 },
  { width: 4000, method: 'permute', peakKiB: 1905540 },
  { width: 4000, method: 'wavg', peakKiB: 304488 },
  { width: 8000, method: 'zipit', peakKiB: 8398048 },
  { width: 8000, method: 'wavg', peakKiB: 421140 },
] as const;

test('the estimate tracks the measured peaks of the wide-MLP merges within 10%', () => {
  for (const { width, method, peakKiB, ...rest } of MEASURED) {
    const dual = 'dual' in rest;
    const peak = peakKiB * 1024;
    // 784-n-10 with biases, float32, two models.
    const modelBytes = 2 * 4 * (784 * width + width + 10 * width + 10);
    const estimate = estimateStatisticsMemory(2, [{ id: 1, width, positionsPerSample: 1 }], 128, {
      method,
      modelBytes,
      weightSimilarity: dual,
    });
    const ratio = estimate.total / peak;
    assert.ok(
      ratio > 0.9 && ratio < 1.1,
      `${method}${dual ? ' dual-space' : ''} n=${width}: estimate/peak ${ratio}`,
    );
  }
});

test('wavg of the 8,000-wide pair is estimated under 1 GB: it needs no statistics (was 8.2 GB, 7.1 GB real)', () => {
  const wide = [{ id: 1, width: 8000, positionsPerSample: 1 }];
  const modelBytes = 2 * 4 * (784 * 8000 + 8000 + 10 * 8000 + 10);
  const wavg = estimateStatisticsMemory(2, wide, 128, { method: 'wavg', modelBytes });
  assert.ok(wavg.total < 1e9, `${wavg.total}`);
  const zipit = estimateStatisticsMemory(2, wide, 128, { method: 'zipit', modelBytes });
  assert.ok(zipit.total > 6e9, `${zipit.total}`);
});

test('the default memory limit is 80% of the least of RAM, available memory and the cgroup limit', () => {
  const GB = 1e9;
  const inGB = (bytes: number): number => Math.round(bytes / 1e6) / 1e3;
  assert.equal(inGB(defaultMemoryLimit({ total: 24 * GB, available: 21 * GB })), 16.8);
  // The case: plenty of RAM, 6 GB left by the rest of the machine.
  assert.equal(inGB(defaultMemoryLimit({ total: 24 * GB, available: 6 * GB })), 4.8);
  assert.equal(
    inGB(defaultMemoryLimit({ total: 24 * GB, available: 20 * GB, constrained: 4 * GB })),
    3.2,
  );
  assert.equal(
    inGB(defaultMemoryLimit({ total: 24 * GB, available: 20 * GB, constrained: 0 })),
    16,
  );
});

test('a wavg merge runs under a memory limit that the statistics of zipit would exceed', async () => {
  const models = [zooModel('mlp', 1), zooModel('mlp', 2)];
  const graph = analyzeGraph(models[0]!);
  assert.ok(graph.ok);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok);
  const sizes = spaceSizes(graph.value, spaces.value.spaces);
  const modelBytes = models
    .flatMap((m) => [...m.graph.initializers.values()])
    .reduce((sum, t) => sum + t.data.byteLength, 0);
  const zipit = estimateStatisticsMemory(2, sizes, 20, { modelBytes });
  const wavg = estimateStatisticsMemory(2, sizes, 20, { method: 'wavg', modelBytes });
  const limit = (zipit.total + wavg.total) / 2;
  const options = {
    match: { alpha: 0.3, beta: 0 },
    batchSize: 20,
    threads: 1,
    memoryLimit: limit,
  } as const;
  const data = syntheticData([1, 28, 28], 40);
  const normalization = { mean: 0.286, std: 0.353 };
  const labels = ['a.onnx', 'b.onnx'];
  const averaged = await mergeModels(models, labels, data, normalization, {
    ...options,
    method: 'wavg',
  });
  assert.ok(averaged.ok, averaged.ok ? '' : averaged.message);
  // No correlation was computed for wavg.
  assert.equal(averaged.value.correlations.size, 0);
  const zipped = await mergeModels(models, labels, data, normalization, {
    ...options,
    method: 'zipit',
  });
  assert.ok(!zipped.ok);
  assert.equal(zipped.reason, 'out-of-memory');
});

test('spaceSizes reads widths and site positions from the graph (ResNet-20: 28x28, 14x14, 7x7 streams)', () => {
  const graph = analyzeGraph(zooModel('resnet20'));
  assert.ok(graph.ok);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok);
  const sizes = spaceSizes(graph.value, spaces.value.spaces);
  assert.equal(sizes.length, 12);
  const positions = new Set(sizes.map((s) => s.positionsPerSample));
  // The last stage's stream is measured on the 7x7 map its average pool reads, not on the means.
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    [49, 196, 784],
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
    'Merging 8 models needs about 8.5 GB, more than the 1.0 GB available; ' +
      'the widest space, 4, has 2048 channels; zip fewer spaces with --stop-at, merge fewer models at once, or use --method wavg (it needs no statistics).',
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
  const models = estimateStatisticsMemory(2, [{ id: 1, width: 64, positionsPerSample: 1 }], 16, {
    method: 'wavg',
    modelBytes: 2e9,
  });
  const big = checkMemoryBudget(models, 2, 1e9);
  assert.ok(!big.ok);
  assert.match(
    big.message,
    /the models themselves need most of it; free memory or merge fewer models at once\.$/,
  );
});
