/** @file The in-memory image dataset: validation, class selection, balanced draws, normalised batches. */

import { fail, ok, type Result } from '../errors.js';
import { mulberry32, permutation, shuffleInPlace } from './random.js';

/** Which half of a dataset with a fixed train/test split. */
export type Split = 'train' | 'test';

/** The shape of one image, channels first. */
export interface ImageShape {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/**
 * Labelled images held in memory as raw bytes; normalisation happens per batch so that a
 * 60,000-image dataset costs 47 MB rather than four times that as floats.
 */
export interface Dataset extends ImageShape {
  /** Pixels 0..255, `[count, channels, height, width]` row-major (each image CHW). */
  readonly images: Uint8Array;
  /** `[count]` class indices, each in `[0, numClasses)`. */
  readonly labels: Uint8Array;
  /** Number of images. */
  readonly count: number;
  /** Size of the label space (10 for Fashion-MNIST and CIFAR-10), not the number of classes present. */
  readonly numClasses: number;
}

/**
 * Per-channel normalisation applied to `pixel / 255`: `(x - mean[c]) / std[c]`. A single
 * number applies to every channel; an array must have one entry per channel.
 */
export interface Normalization {
  readonly mean: number | readonly number[];
  readonly std: number | readonly number[];
}

/** One mini-batch, ready to feed a model with input layout NCHW. */
export interface Batch {
  /** `[size, channels, height, width]` normalised pixels. */
  readonly input: Float32Array;
  /** `[size]` class indices. */
  readonly labels: Uint8Array;
  /** Number of images in this batch; the last batch may be smaller than the batch size. */
  readonly size: number;
}

/** A re-iterable sequence of batches: every `for ... of` starts again from the first batch. */
export interface Batches extends Iterable<Batch> {
  /** How many batches one pass yields, e.g. for a progress bar. */
  readonly numBatches: number;
}

/** Options of {@link batches}. */
export interface BatchOptions {
  /** Images per batch (a positive integer). */
  readonly batchSize: number;
  /** How pixels become model inputs; usually the statistics the model was trained with. */
  readonly normalization: Normalization;
  /** Visit images in a seeded random order; omitted, they come in dataset order. */
  readonly shuffleSeed?: number;
  /** Skip a final batch smaller than `batchSize` (default false: keep it). */
  readonly dropLast?: boolean;
}

/** Number of bytes (= pixels) in one image of `shape`. */
export function imageSize(shape: ImageShape): number {
  return shape.channels * shape.height * shape.width;
}

/** Formats a shape as `CxHxW`, the form every message about shapes uses. */
export function formatShape(shape: ImageShape): string {
  return `${shape.channels}x${shape.height}x${shape.width}`;
}

/**
 * Checks that the fields of a freshly loaded dataset agree with each other.
 *
 * @param fields - The dataset to check; returned unchanged on success.
 * @param source - Where it came from (a path or a spec), named in every failure message.
 */
export function createDataset(fields: Dataset, source: string): Result<Dataset> {
  const { count, channels, height, width, numClasses, images, labels } = fields;
  for (const [name, value] of Object.entries({ count, channels, height, width })) {
    if (!Number.isInteger(value) || value < 0) {
      return fail('bad-dataset', `Expected a non-negative integer ${name} in ${source}, got ${value}`);
    }
  }
  if (count === 0) return fail('bad-dataset', `Expected images in ${source}, got none`);
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    return fail('bad-dataset', `Expected 1..256 classes in ${source}, got ${numClasses}`);
  }
  if (images.length !== count * imageSize(fields)) {
    return fail(
      'bad-dataset',
      `Expected ${count} images of ${formatShape(fields)} (${count * imageSize(fields)} bytes) in ${source}, got ${images.length} bytes`,
    );
  }
  if (labels.length !== count) {
    return fail('bad-dataset', `Expected ${count} labels in ${source}, got ${labels.length}`);
  }
  const bad = labels.findIndex((label) => label >= numClasses);
  if (bad >= 0) {
    return fail(
      'bad-dataset',
      `Expected labels 0..${numClasses - 1} in ${source}, got ${labels[bad]} for image ${bad}`,
    );
  }
  return ok(fields);
}

/** Images per class: entry `k` counts the images labelled `k` (length `numClasses`). */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (const label of ds.labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts;
}

/**
 * The images at `indices`, in that order (repeats allowed). An index outside the dataset is
 * a bug in the caller and throws a RangeError.
 */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const size = imageSize(ds);
  const count = indices.length;
  const images = new Uint8Array(count * size);
  const labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const index = indices[k]!;
    if (!Number.isInteger(index) || index < 0 || index >= ds.count) {
      throw new RangeError(`subset: index ${index} outside 0..${ds.count - 1}`);
    }
    images.set(ds.images.subarray(index * size, (index + 1) * size), k * size);
    labels[k] = ds.labels[index]!;
  }
  return { ...ds, images, labels, count };
}

/** A copy of `ds` in a seeded random order; the same seed gives the same order. */
export function shuffleDataset(ds: Dataset, seed: number): Dataset {
  return subset(ds, permutation(ds.count, seed));
}

/**
 * Checks a list of class indices chosen by the user: non-empty, integers within the label
 * space, no repeats.
 *
 * @param what - How the message names the list, e.g. `'--classes'` or `'task 2'`.
 */
export function checkClasses(
  classes: readonly number[],
  numClasses: number,
  what = 'the class list',
): Result<void> {
  if (classes.length === 0) return fail('bad-argument', `Expected at least one class in ${what}, got none`);
  const seen = new Set<number>();
  for (const k of classes) {
    if (!Number.isInteger(k) || k < 0 || k >= numClasses) {
      return fail('bad-argument', `Expected classes 0..${numClasses - 1} in ${what}, got ${k}`);
    }
    if (seen.has(k)) return fail('bad-argument', `Expected each class once in ${what}, got ${k} twice`);
    seen.add(k);
  }
  return ok(undefined);
}

/** Options of {@link selectClasses}. */
export interface SelectOptions {
  /**
   * Renumber labels so `classes[i]` becomes `i` and `numClasses` becomes `classes.length`,
   * as a model with a head of only those classes expects. Default false: labels keep their
   * original numbers.
   */
  readonly relabel?: boolean;
}

/** The images whose label is one of `classes`, in dataset order. */
export function selectClasses(
  ds: Dataset,
  classes: readonly number[],
  options: SelectOptions = {},
): Result<Dataset> {
  const checked = checkClasses(classes, ds.numClasses);
  if (!checked.ok) return checked;
  // -1 marks a class left out; otherwise the label the class gets in the result.
  const newLabel = new Int16Array(ds.numClasses).fill(-1);
  for (const [position, k] of classes.entries()) newLabel[k] = options.relabel ? position : k;

  const indices: number[] = [];
  ds.labels.forEach((label, index) => {
    if (newLabel[label] !== -1) indices.push(index);
  });
  if (indices.length === 0) {
    return fail('bad-dataset', `Expected images of classes ${classes.join(',')}, found none`);
  }
  const selected = subset(ds, indices);
  if (!options.relabel) return ok(selected);
  const labels = selected.labels.map((label) => newLabel[label]!);
  return ok({ ...selected, labels, numClasses: classes.length });
}

/**
 * Draws `total` images spread evenly over `classes`, each class's images chosen at random
 * without replacement, and returns them in a seeded random order (so every batch mixes
 * classes). This is how ZipIt! builds its merge data: e.g. 5,000 images from all tasks'
 * classes together.
 *
 * When `total` is not a multiple of the number of classes, the first `total % classes.length`
 * classes in the given order get one image more. The same inputs and seed always give the
 * same images in the same order.
 */
export function takeBalanced(
  ds: Dataset,
  classes: readonly number[],
  total: number,
  seed: number,
): Result<Dataset> {
  const checked = checkClasses(classes, ds.numClasses);
  if (!checked.ok) return checked;
  if (!Number.isInteger(total) || total < classes.length) {
    return fail(
      'bad-argument',
      `Expected a sample count of at least ${classes.length} (one per class), got ${total}`,
    );
  }
  const byClass: number[][] = Array.from({ length: ds.numClasses }, () => []);
  ds.labels.forEach((label, index) => byClass[label]!.push(index));

  const rng = mulberry32(seed);
  const perClass = Math.floor(total / classes.length);
  const extra = total % classes.length;
  const chosen: number[] = [];
  for (const [position, k] of classes.entries()) {
    const want = perClass + (position < extra ? 1 : 0);
    const pool = byClass[k]!;
    if (pool.length < want) {
      return fail(
        'bad-argument',
        `Expected at least ${want} images of class ${k} to draw ${total} evenly over ${classes.length} classes, the dataset has ${pool.length}; lower the sample count`,
      );
    }
    // A loop, not push(...slice): spreading 60,000 arguments can overflow the stack.
    for (const index of shuffleInPlace(pool, rng).slice(0, want)) chosen.push(index);
  }
  return ok(subset(ds, shuffleInPlace(chosen, rng)));
}

/**
 * Fails clearly when the images are not the shape a model expects, before any inference.
 *
 * @param what - Names the model in the message, e.g. `'model-a.onnx'`.
 */
export function checkImageShape(
  actual: ImageShape,
  expected: ImageShape,
  what = 'this model',
): Result<void> {
  if (
    actual.channels === expected.channels &&
    actual.height === expected.height &&
    actual.width === expected.width
  ) {
    return ok(undefined);
  }
  return fail(
    'bad-dataset',
    `Expected images of ${formatShape(expected)} for ${what}, got ${formatShape(actual)}; use a dataset of the model's input shape (fashion-mnist is 1x28x28, cifar10 is 3x32x32)`,
  );
}

/**
 * Lookup tables pixel -> normalised value, one per channel. `(p / 255 - mean) / std` is
 * computed in double precision and rounded once to float32.
 */
function normalizationTables(
  normalization: Normalization,
  channels: number,
): Result<Float32Array[]> {
  const perChannel = (name: 'mean' | 'std'): Result<number[]> => {
    const given = normalization[name];
    const values = typeof given === 'number' ? new Array<number>(channels).fill(given) : [...given];
    if (values.length !== channels) {
      return fail(
        'bad-argument',
        `Expected ${channels === 1 ? `1 normalisation ${name} value` : `1 or ${channels} normalisation ${name} values (one per channel)`}, got ${values.length}`,
      );
    }
    const bad = values.find((v) => !Number.isFinite(v) || (name === 'std' && v <= 0));
    if (bad !== undefined) {
      const wanted = name === 'std' ? 'positive finite' : 'finite';
      return fail('bad-argument', `Expected ${wanted} normalisation ${name} values, got ${bad}`);
    }
    return ok(values);
  };
  const mean = perChannel('mean');
  if (!mean.ok) return mean;
  const std = perChannel('std');
  if (!std.ok) return std;
  return ok(
    mean.value.map((m, c) => {
      const s = std.value[c]!;
      return Float32Array.from({ length: 256 }, (_, pixel) => (pixel / 255 - m) / s);
    }),
  );
}

/** Writes `count` images starting at image `first` of `order` into `out`, normalised. */
function normalizeInto(
  ds: Dataset,
  tables: readonly Float32Array[],
  order: ArrayLike<number> | undefined,
  first: number,
  count: number,
  out: Float32Array,
  labels?: Uint8Array,
): void {
  const plane = ds.height * ds.width;
  const size = ds.channels * plane;
  for (let k = 0; k < count; k++) {
    const image = order ? order[first + k]! : first + k;
    if (labels) labels[k] = ds.labels[image]!;
    for (let c = 0; c < ds.channels; c++) {
      const table = tables[c]!;
      const src = image * size + c * plane;
      const dst = k * size + c * plane;
      for (let p = 0; p < plane; p++) out[dst + p] = table[ds.images[src + p]!]!;
    }
  }
}

/** All images of `ds` normalised at once: `[count, channels, height, width]`. */
export function normalizeImages(ds: Dataset, normalization: Normalization): Result<Float32Array> {
  const tables = normalizationTables(normalization, ds.channels);
  if (!tables.ok) return tables;
  const out = new Float32Array(ds.count * imageSize(ds));
  normalizeInto(ds, tables.value, undefined, 0, ds.count, out);
  return ok(out);
}

/**
 * Splits `ds` into normalised mini-batches. Options are checked here, before the first batch,
 * so a bad mean/std fails up front. Each batch owns fresh arrays: keeping one is safe.
 */
export function batches(ds: Dataset, options: BatchOptions): Result<Batches> {
  const { batchSize, shuffleSeed, dropLast = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    return fail('bad-argument', `Expected a positive integer batch size, got ${batchSize}`);
  }
  const tables = normalizationTables(options.normalization, ds.channels);
  if (!tables.ok) return tables;
  const order = shuffleSeed === undefined ? undefined : permutation(ds.count, shuffleSeed);
  const numBatches = dropLast ? Math.floor(ds.count / batchSize) : Math.ceil(ds.count / batchSize);
  const size = imageSize(ds);
  return ok({
    numBatches,
    *[Symbol.iterator](): Iterator<Batch> {
      for (let b = 0; b < numBatches; b++) {
        const first = b * batchSize;
        const count = Math.min(batchSize, ds.count - first);
        const input = new Float32Array(count * size);
        const labels = new Uint8Array(count);
        normalizeInto(ds, tables.value, order, first, count, input, labels);
        yield { input, labels, size: count };
      }
    },
  });
}
