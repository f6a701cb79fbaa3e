/** @file Tests of dataset selection, balanced draws, shuffling, normalisation and batching. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  batches,
  checkImageShape,
  classCounts,
  createDataset,
  normalizeImages,
  selectClasses,
  shuffleDataset,
  subset,
  takeBalanced,
  type Dataset,
} from '../../src/data/dataset.js';
import { makeDataset } from './helpers.js';

/** Asserts every element of `actual` is within `tolerance` of `expected`, naming the first miss. */
function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-6): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tolerance, `element ${i}: expected ${e}, got ${a}`);
  }
}

describe('createDataset', () => {
  it('accepts consistent fields', () => {
    const ds = makeDataset(6, 3);
    assert.deepEqual(createDataset(ds, 'fixture'), { ok: true, value: ds });
  });

  it('EXPECTED FAILURE - image bytes do not match count x shape', () => {
    const ds = { ...makeDataset(6, 3), count: 5 };
    const result = createDataset(ds, 'fixture');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(result.message, 'Expected 5 images of 1x2x2 (20 bytes) in fixture, got 24 bytes');
  });
});

describe('class selection', () => {
  const ds = makeDataset(30, 10);

  it('counts images per class', () => {
    assert.deepEqual(classCounts(ds), [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
  });

  it('keeps only the chosen classes, labels unchanged, in dataset order', () => {
    const selected = selectClasses(ds, [7, 2]);
    assert.ok(selected.ok);
    assert.equal(selected.value.count, 6);
    assert.equal(selected.value.numClasses, 10);
    assert.deepEqual([...selected.value.labels], [2, 7, 2, 7, 2, 7]);
    // Image i is filled with i: the first selected image is image 2.
    assert.deepEqual([...selected.value.images.subarray(0, 4)], [2, 2, 2, 2]);
  });

  it('relabels to positions in the class list when asked', () => {
    const selected = selectClasses(ds, [7, 2], { relabel: true });
    assert.ok(selected.ok);
    assert.equal(selected.value.numClasses, 2);
    assert.deepEqual([...selected.value.labels], [1, 0, 1, 0, 1, 0]);
  });

  it('EXPECTED FAILURE - classes out of range', () => {
    const result = selectClasses(ds, [3, 10]);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-argument');
    assert.equal(result.message, 'Expected classes 0..9 in the class list, got 10');
  });

  it('EXPECTED FAILURE - duplicate and empty class lists', () => {
    const twice = selectClasses(ds, [3, 3]);
    assert.ok(!twice.ok);
    assert.equal(twice.message, 'Expected each class once in the class list, got 3 twice');
    const none = selectClasses(ds, []);
    assert.ok(!none.ok);
    assert.equal(none.message, 'Expected at least one class in the class list, got none');
  });

  it('EXPECTED FAILURE - no image of the chosen classes', () => {
    const result = selectClasses(makeDataset(4, 10), [8, 9]);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(result.message, 'Expected images of classes 8,9, found none');
  });
});

describe('takeBalanced', () => {
  // 100 images per class, 10 classes.
  const ds = makeDataset(1000, 10);
  const labelsOf = (d: Dataset) => [...d.labels];

  it('draws the same number from every class', () => {
    const drawn = takeBalanced(ds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 500, 1);
    assert.ok(drawn.ok);
    assert.equal(drawn.value.count, 500);
    assert.deepEqual(classCounts(drawn.value), new Array(10).fill(50));
  });

  it('gives the remainder to the first classes listed', () => {
    const drawn = takeBalanced(ds, [5, 1, 3], 11, 1);
    assert.ok(drawn.ok);
    const counts = classCounts(drawn.value);
    assert.deepEqual([counts[5], counts[1], counts[3]], [4, 4, 3]);
    assert.equal(drawn.value.count, 11);
  });

  it('draws without replacement, mixes classes, and is deterministic per seed', () => {
    const a = takeBalanced(ds, [0, 1], 200, 9);
    const b = takeBalanced(ds, [0, 1], 200, 9);
    const c = takeBalanced(ds, [0, 1], 200, 10);
    assert.ok(a.ok && b.ok && c.ok);
    assert.deepEqual(a.value, b.value);
    assert.notDeepEqual(labelsOf(a.value), labelsOf(c.value));
    // All 100 images of each class, each once: pixel values identify source images mod 256,
    // so compare the multiset of the first pixel of each image with a full selection.
    const firstPixels = (d: Dataset) =>
      Array.from({ length: d.count }, (_, i) => d.images[i * 4]!).sort((x, y) => x - y);
    const all = selectClasses(ds, [0, 1]);
    assert.ok(all.ok);
    assert.deepEqual(firstPixels(a.value), firstPixels(all.value));
    // Not sorted by class: the first 20 draws contain both classes.
    assert.equal(new Set(labelsOf(a.value).slice(0, 20)).size, 2);
  });

  it('EXPECTED FAILURE - more images requested than a class has', () => {
    const result = takeBalanced(ds, [0, 1], 300, 1);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-argument');
    assert.equal(
      result.message,
      'Expected at least 150 images of class 0 to draw 300 evenly over 2 classes, the dataset has 100; lower the sample count',
    );
  });

  it('EXPECTED FAILURE - fewer samples than classes, and classes out of range', () => {
    const few = takeBalanced(ds, [0, 1, 2], 2, 1);
    assert.ok(!few.ok);
    assert.equal(few.message, 'Expected a sample count of at least 3 (one per class), got 2');
    const range = takeBalanced(ds, [0, 12], 10, 1);
    assert.ok(!range.ok);
    assert.equal(range.message, 'Expected classes 0..9 in the class list, got 12');
  });
});

describe('shuffle and subset', () => {
  it('shuffleDataset keeps image/label pairs together and is deterministic', () => {
    const ds = makeDataset(50, 7);
    const shuffled = shuffleDataset(ds, 3);
    assert.deepEqual(shuffled, shuffleDataset(ds, 3));
    assert.notDeepEqual([...shuffled.labels], [...ds.labels]);
    for (let i = 0; i < shuffled.count; i++) {
      const source = shuffled.images[i * 4]!;
      assert.equal(shuffled.labels[i], source % 7, `image ${i} came from ${source}`);
    }
  });

  it('subset gathers by index and rejects out-of-range indices as a bug', () => {
    const ds = makeDataset(5, 5);
    assert.deepEqual([...subset(ds, [4, 0, 4]).labels], [4, 0, 4]);
    assert.throws(() => subset(ds, [5]), RangeError);
  });
});

describe('normalisation and batches', () => {
  // One image of 3x1x2: channels [0, 255], [128, 51], [255, 0].
  const rgb: Dataset = {
    images: Uint8Array.of(0, 255, 128, 51, 255, 0),
    labels: Uint8Array.of(1),
    count: 1,
    channels: 3,
    height: 1,
    width: 2,
    numClasses: 2,
  };

  it('computes (pixel / 255 - mean) / std with one value for all channels', () => {
    const out = normalizeImages(rgb, { mean: 0.5, std: 0.25 });
    assert.ok(out.ok);
    // 0 -> -2, 255 -> 2, 128 -> (128/255 - 0.5) * 4 = 0.0078431..., 51 -> -1.2
    assertClose(out.value, [-2, 2, 0.00784313725490196, -1.2, 2, -2]);
  });

  it('computes per-channel mean and std', () => {
    const out = normalizeImages(rgb, { mean: [0, 0.5, 1], std: [1, 0.5, 2] });
    assert.ok(out.ok);
    assertClose(out.value, [0, 1, 128 / 255 / 0.5 - 1, 0.2 / 0.5 - 1, 0, -0.5]);
  });

  it('yields batches in order with a smaller last batch, or drops it', () => {
    const ds = makeDataset(10, 10);
    const result = batches(ds, { batchSize: 4, normalization: { mean: 0, std: 1 } });
    assert.ok(result.ok);
    assert.equal(result.value.numBatches, 3);
    const all = [...result.value];
    assert.deepEqual(
      all.map((b) => b.size),
      [4, 4, 2],
    );
    assert.deepEqual([...all[2]!.labels], [8, 9]);
    assert.equal(all[0]!.input.length, 4 * 4);
    assertClose(all[1]!.input.subarray(0, 4), [4 / 255, 4 / 255, 4 / 255, 4 / 255]);
    // Re-iterable: a second pass starts again.
    assert.equal([...result.value].length, 3);

    const dropped = batches(ds, { batchSize: 4, normalization: { mean: 0, std: 1 }, dropLast: true });
    assert.ok(dropped.ok);
    assert.deepEqual(
      [...dropped.value].map((b) => b.size),
      [4, 4],
    );
  });

  it('shuffles batches with a seed, keeping inputs with their labels', () => {
    const ds = makeDataset(20, 20);
    const options = { batchSize: 8, normalization: { mean: 0, std: 1 }, shuffleSeed: 4 };
    const first = batches(ds, options);
    const again = batches(ds, options);
    assert.ok(first.ok && again.ok);
    const labels = [...first.value].flatMap((b) => [...b.labels]);
    assert.deepEqual(labels, [...again.value].flatMap((b) => [...b.labels]));
    assert.notDeepEqual(labels, [...ds.labels]);
    assert.deepEqual([...labels].sort((a, b) => a - b), [...ds.labels]);
    for (const batch of first.value) {
      for (let k = 0; k < batch.size; k++) {
        assertClose([batch.input[k * 4]!], [batch.labels[k]! / 255]);
      }
    }
  });

  it('EXPECTED FAILURE - bad batch size and normalisation', () => {
    const ds = makeDataset(4, 2, { channels: 3, height: 1, width: 1 });
    const size = batches(ds, { batchSize: 0, normalization: { mean: 0, std: 1 } });
    assert.ok(!size.ok);
    assert.equal(size.reason, 'bad-argument');
    assert.equal(size.message, 'Expected a positive integer batch size, got 0');
    const channels = batches(ds, { batchSize: 2, normalization: { mean: [0.5, 0.5], std: 1 } });
    assert.ok(!channels.ok);
    assert.equal(
      channels.message,
      'Expected 1 or 3 normalisation mean values (one per channel), got 2',
    );
    const zero = normalizeImages(ds, { mean: 0, std: [1, 0, 1] });
    assert.ok(!zero.ok);
    assert.equal(zero.message, 'Expected positive finite normalisation std values, got 0');
  });
});

describe('checkImageShape', () => {
  it('accepts a matching shape', () => {
    assert.deepEqual(checkImageShape(makeDataset(1, 1, { channels: 1, height: 28, width: 28 }), {
      channels: 1,
      height: 28,
      width: 28,
    }), { ok: true, value: undefined });
  });

  it('EXPECTED FAILURE - images of another shape than the model expects', () => {
    const cifarLike = makeDataset(1, 10, { channels: 3, height: 32, width: 32 });
    const result = checkImageShape(cifarLike, { channels: 1, height: 28, width: 28 }, 'model-a.onnx');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(
      result.message,
      "Expected images of 1x28x28 for model-a.onnx, got 3x32x32; use a dataset of the model's input shape (fashion-mnist is 1x28x28, cifar10 is 3x32x32)",
    );
  });
});
