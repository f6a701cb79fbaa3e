/** @file Statistics files: round trip, shard sums, and failures on mismatched or garbled input. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { channelMeans } from '../../src/stats/activations.js';
import { CovarianceAccumulator } from '../../src/stats/covariance.js';
import {
  decodeStatistics,
  encodeStatistics,
  sumStatistics,
  sumStatisticsFiles,
  type StatisticsSet,
} from '../../src/stats/file.js';
import { Random } from '../../src/tensor/random.js';
import { covarianceError, randomBatch, referenceMoments } from './reference.js';

const random = new Random(21);
const batches = [3, 4, 2].map((n) => randomBatch(random, 2, [n, 3, 2, 2], 1));
const linear = [5, 6, 7].map((n) => randomBatch(random, 3, [n, 2], -2));

/** Accumulators for spaces 'conv' (K=2, C=3) and 'fc' (K=3, C=2) over batches `which`. */
function shard(which: readonly number[]): Map<string, CovarianceAccumulator> {
  const conv = new CovarianceAccumulator(2, 3);
  const fc = new CovarianceAccumulator(3, 2);
  for (const i of which) {
    for (const [acc, batch] of [
      [conv, batches[i]!],
      [fc, linear[i]!],
    ] as const) {
      const shift = channelMeans(batch);
      assert.ok(shift.ok);
      acc.addBatch(referenceMoments(batch, acc.shift ?? shift.value));
    }
  }
  return new Map([
    ['conv', conv],
    ['fc', fc],
  ]);
}

function assertSameStatistics(a: StatisticsSet, b: StatisticsSet, tolerance: number): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [id, acc] of a) {
    const x = acc.finalize();
    const y = b.get(id)!.finalize();
    assert.ok(x.ok && y.ok);
    assert.equal(x.value.count, y.value.count, id);
    assert.ok(covarianceError(x.value.covariance, y.value.covariance) <= tolerance, id);
  }
}

function failureOf<T>(
  result: { ok: true; value: T } | { ok: false; reason: string; message: string },
) {
  assert.ok(!result.ok, 'expected a failure');
  return result;
}

describe('statistics files', () => {
  it('round-trips accumulators exactly, an empty one included', () => {
    const set = shard([0, 1]);
    set.set('empty', new CovarianceAccumulator(1, 4));
    const decoded = decodeStatistics(encodeStatistics(set));
    assert.ok(decoded.ok);
    for (const [id, acc] of set) assert.deepEqual(decoded.value.get(id)!.state(), acc.state(), id);
  });

  it('sums shards to the one-pass statistics', () => {
    const files = [[0], [1, 2]].map((which, i) => ({
      label: `shard${i}.zst`,
      bytes: encodeStatistics(shard(which)),
    }));
    const summed = sumStatisticsFiles(files);
    assert.ok(summed.ok);
    assertSameStatistics(summed.value, shard([0, 1, 2]), 1e-12);
    const again = decodeStatistics(files[0]!.bytes);
    assert.ok(again.ok);
    assert.equal(again.value.get('conv')!.count, 12, 'inputs are not modified');
  });

  it('EXPECTED FAILURE - shards with different widths', () => {
    const other = shard([0]);
    other.set('fc', new CovarianceAccumulator(3, 5));
    const result = failureOf(
      sumStatistics([
        { label: 'a.zst', statistics: shard([0]) },
        { label: 'b.zst', statistics: other },
      ]),
    );
    assert.equal(result.reason, 'bad-statistics');
    assert.equal(
      result.message,
      "Expected space 'fc' in b.zst to have 3 models x 2 channels like a.zst, got 3 x 5",
    );
  });

  it('EXPECTED FAILURE - shards with different spaces', () => {
    const other = shard([1]);
    other.delete('conv');
    const result = failureOf(
      sumStatistics([
        { label: 'a.zst', statistics: shard([0]) },
        { label: 'b.zst', statistics: other },
      ]),
    );
    assert.equal(
      result.message,
      "Expected b.zst to hold the spaces of a.zst; space 'conv' is missing",
    );
  });

  it('EXPECTED FAILURE - a truncated file', () => {
    const bytes = encodeStatistics(shard([0]));
    const result = failureOf(decodeStatistics(bytes.subarray(0, bytes.length - 8), 'cut.zst'));
    assert.equal(result.reason, 'bad-statistics');
    assert.match(
      result.message,
      /^Expected cut\.zst to be a zipit statistics file, but its header promises \d+ bytes and it has \d+ \(truncated\)$/,
    );
  });

  it('EXPECTED FAILURE - a garbled file', () => {
    const notStats = failureOf(
      decodeStatistics(new TextEncoder().encode('hello, this is not a statistics file'), 'x.onnx'),
    );
    assert.equal(
      notStats.message,
      'Expected x.onnx to be a zipit statistics file, but it does not start with ZIPSTATS',
    );
    const bytes = encodeStatistics(shard([0]));
    bytes[16] = 0x5b; // the header's opening brace becomes a bracket
    const badHeader = failureOf(decodeStatistics(bytes, 'g.zst'));
    assert.equal(
      badHeader.message,
      'Expected g.zst to be a zipit statistics file, but its header is not valid JSON',
    );
  });

  it('never throws on any truncation or any flipped byte', () => {
    const bytes = encodeStatistics(shard([0]));
    const headerEnd = 16 + new DataView(bytes.buffer).getUint32(12, true);
    for (let length = 0; length < bytes.length; length += length < headerEnd + 16 ? 1 : 97) {
      assert.equal(decodeStatistics(bytes.subarray(0, length)).ok, false, `length ${length}`);
    }
    const flips = new Random(5);
    for (let trial = 0; trial < 300; trial++) {
      const copy = bytes.slice();
      const at = trial < 150 ? flips.int(headerEnd) : flips.int(copy.length);
      copy[at] = copy[at]! ^ (1 << flips.int(8));
      decodeStatistics(copy);
    }
  });
});
