/** @file The fused statistics pass (all models and moments in one session) against capturing
 * every batch's activations: the same statistics, for plain, residual and concatenated spaces. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batches, takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { collectStatistics, type CollectedStatistics } from '../../src/merge/collect.js';
import { analyzeModels } from '../../src/merge/pipeline.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import type { Dataset } from '../../src/data/dataset.js';
import type { Model } from '../../src/onnx/model.js';
import { Random } from '../../src/tensor/random.js';
import { decodeModel } from '../../src/onnx/model.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureModel, zooModel } from '../helpers.js';

const NORMALIZATION = { mean: 0.286, std: 0.353 };

/** Fashion-MNIST test images, or for other input shapes seeded random pixels. */
function imagesFor(shape: readonly [number, number, number]): Dataset {
  const [channels, height, width] = shape;
  if (channels === 1 && height === 28 && width === 28) {
    const test = loadFashionMnist('test');
    assert.ok(test.ok);
    const data = takeBalanced(test.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 80, 5);
    assert.ok(data.ok);
    return data.value;
  }
  const random = new Random(9);
  const count = 80;
  const images = Uint8Array.from({ length: count * channels * height * width }, () =>
    random.int(256),
  );
  return { images, labels: new Uint8Array(count), count, numClasses: 10, channels, height, width };
}

async function collect(
  models: readonly Model[],
  fused: boolean,
  momentValues: (spaces: ReturnType<typeof mergeableOf>) => string[] = () => [],
  shape: readonly [number, number, number] = [1, 28, 28],
): Promise<CollectedStatistics> {
  const labels = models.map((_, k) => `m${k}`);
  const graphs = analyzeModels(models, labels);
  assert.ok(graphs.ok, !graphs.ok ? graphs.message : '');
  const maps = checkSameStructure(graphs.value, labels);
  assert.ok(maps.ok);
  const spaces = mergeableOf(graphs.value[0]!);
  // 80 images in batches of 32: two full batches and a partial one, so the fused graph runs
  // at two batch sizes.
  const pass = batches(imagesFor(shape), { batchSize: 32, normalization: NORMALIZATION });
  assert.ok(pass.ok);
  const collected = await collectStatistics(
    graphs.value,
    maps.value.values,
    spaces,
    pass.value,
    [...shape],
    {
      fused,
      momentValues: momentValues(spaces),
    },
  );
  if (!collected.ok) assert.fail(collected.message);
  return collected.value;
}

function mergeableOf(graph: Parameters<typeof analyzeSpaces>[0]) {
  const spaces = analyzeSpaces(graph);
  assert.ok(spaces.ok);
  return spaces.value.spaces.filter((s) => s.kind !== 'fixed' && s.site !== undefined);
}

function worstRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-12;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return worst / scale;
}

function assertSameStatistics(fused: CollectedStatistics, captured: CollectedStatistics): void {
  assert.equal(captured.fusedBatches, 0);
  // The first batch sets the shifts through captured activations; the other two are fused.
  assert.equal(fused.fusedBatches, 2);
  assert.deepEqual([...fused.covariance.keys()], [...captured.covariance.keys()]);
  for (const [id, accumulator] of captured.covariance) {
    const expected = accumulator.finalize();
    const actual = fused.covariance.get(id)!.finalize();
    assert.ok(expected.ok && actual.ok);
    assert.equal(actual.value.count, expected.value.count);
    // float32 GEMMs either way; 1e-5 of the largest entry is far below any matching decision.
    const mean = worstRelative(actual.value.mean, expected.value.mean);
    const cov = worstRelative(actual.value.covariance, expected.value.covariance);
    assert.ok(mean < 1e-5 && cov < 1e-5, `space ${id}: mean off by ${mean}, covariance by ${cov}`);
  }
}

describe('fused statistics pass', () => {
  it('equals the captured pass on ResNet-20 (residual spaces), with per-channel moments', async () => {
    const models = [zooModel('resnet20', 1), zooModel('resnet20', 2)];
    const moments = (spaces: ReturnType<typeof mergeableOf>): string[] =>
      spaces.flatMap((s) => s.producerOutputs).slice(0, 3);
    const fused = await collect(models, true, moments);
    const captured = await collect(models, false, moments);
    assertSameStatistics(fused, captured);
    for (const [k, perValue] of captured.moments.entries()) {
      assert.ok(perValue.size > 0);
      for (const [value, m] of perValue) {
        const expected = m.finalize();
        const actual = fused.moments[k]!.get(value)!.finalize();
        assert.ok(worstRelative(actual.mean, expected.mean) < 1e-5, `${value} mean`);
        assert.ok(worstRelative(actual.variance, expected.variance) < 1e-5, `${value} variance`);
      }
    }
  });

  it('equals the captured pass on PyTorch exports (VGG and a Concat of spaces)', async () => {
    await (async () => {
      const vgg = [fixtureModel('vgg', 'a'), fixtureModel('vgg', 'b')];
      assertSameStatistics(await collect(vgg, true), await collect(vgg, false));
    })();
    const concat = decodeModel(
      readFileSync(join(import.meta.dirname, '..', 'fixtures', 'torch-extra', 'concat.onnx')),
    );
    assert.ok(concat.ok);
    const pair = [concat.value, concat.value];
    const shape = [3, 16, 16] as const;
    assertSameStatistics(
      await collect(pair, true, undefined, shape),
      await collect(pair, false, undefined, shape),
    );
  });

  it('is not used for models of different opsets (they cannot share one graph)', async () => {
    const a = zooModel('mlp', 1);
    const b = { ...zooModel('mlp', 2), opsetImports: [{ domain: '', version: 14 }] };
    const collected = await collect([a, b], true);
    assert.equal(collected.fusedBatches, 0);
  });
});
