/** @file Sharded statistics: two shards computed apart and summed merge exactly like one pass over both. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { subset, takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import {
  collectMergeStatistics,
  mergeModels,
  type MergeOptions,
} from '../../src/merge/pipeline.js';
import { encodeModel } from '../../src/onnx/model.js';
import { decodeStatistics, encodeStatistics, sumStatistics } from '../../src/stats/file.js';
import { fixtureModel } from '../helpers.js';

test('statistics of two shards, saved, loaded and summed, give the same merge as one pass', async () => {
  const train = loadFashionMnist('train');
  assert.ok(train.ok);
  const all = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 512, 3);
  assert.ok(all.ok);
  const first = subset(
    all.value,
    Array.from({ length: 256 }, (_, i) => i),
  );
  const second = subset(
    all.value,
    Array.from({ length: 256 }, (_, i) => 256 + i),
  );
  const models = [fixtureModel('mlp', 'a'), fixtureModel('mlp', 'b')];
  const normalization = { mean: [0.286], std: [0.353] };
  const options: MergeOptions = {
    method: 'zipit',
    match: { alpha: 0.3, beta: 0.125 },
    repair: false,
    batchSize: 128,
  };
  const shards = [];
  for (const [i, shard] of [first, second].entries()) {
    const statistics = await collectMergeStatistics(
      models,
      ['a', 'b'],
      shard,
      normalization,
      options,
    );
    assert.ok(statistics.ok);
    // Through the file format, as separate machines would.
    const decoded = decodeStatistics(encodeStatistics(statistics.value), `shard ${i}`);
    assert.ok(decoded.ok);
    shards.push({ label: `shard ${i}`, statistics: decoded.value });
  }
  const summed = sumStatistics(shards);
  assert.ok(summed.ok);
  const fromShards = await mergeModels(models, ['a', 'b'], all.value, normalization, {
    ...options,
    statistics: summed.value,
  });
  const onePass = await mergeModels(models, ['a', 'b'], all.value, normalization, options);
  assert.ok(fromShards.ok && onePass.ok);
  assert.deepEqual(
    fromShards.value.report.spaces.map((s) => [s.crossModelMerges, s.sameModelMerges]),
    onePass.value.report.spaces.map((s) => [s.crossModelMerges, s.sameModelMerges]),
  );
  assert.equal(
    Buffer.compare(
      Buffer.from(encodeModel(fromShards.value.model)),
      Buffer.from(encodeModel(onePass.value.model)),
    ),
    0,
  );
});
