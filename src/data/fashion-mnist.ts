/** @file The Fashion-MNIST copy embedded in data/fashion-mnist: location, checksums, loading. */

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail, type Result } from '../errors.js';
import type { Dataset, Split } from './dataset.js';
import { datasetFromIdx, parseIdx } from './idx.js';
import { readMaybeGzip } from './read-file.js';

/** Class names of Fashion-MNIST, indexed by label. */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/**
 * SHA-256 of each DECOMPRESSED file, by decompressed name. Hashing the content rather than the
 * `.gz` keeps the check valid for any recompression (the Debian copy we embed has a different
 * gzip header, hence different `.gz` bytes, than the upstream download).
 */
export const FASHION_MNIST_SHA256: Readonly<Record<string, string>> = {
  'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
  'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
  't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
  't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
};

/**
 * Absolute path of data/fashion-mnist. This module runs as src/data/fashion-mnist.ts (tsx)
 * and as dist/data/fashion-mnist.js (after tsc); both sit two levels below the repository
 * root, so one relative URL serves both.
 */
export function fashionMnistDir(): string {
  return fileURLToPath(new URL('../../data/fashion-mnist/', import.meta.url));
}

/** Decompressed file names (without `.gz`) of a split, as listed in {@link FASHION_MNIST_SHA256}. */
export function fashionMnistFileNames(split: Split): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
}

/** Options of {@link loadFashionMnist}. */
export interface FashionMnistOptions {
  /** Folder holding the four `.gz` files; default {@link fashionMnistDir}. */
  readonly dir?: string;
  /**
   * Compare each file's SHA-256 with {@link FASHION_MNIST_SHA256} (default true). It costs
   * about 40 ms for the training images, so a file is hashed only once per process.
   */
  readonly verify?: boolean;
}

// Paths whose content already matched its checksum in this process.
const verified = new Set<string>();

function readVerified(dir: string, name: string, what: string, verify: boolean): Result<Uint8Array> {
  const path = join(dir, `${name}.gz`);
  const bytes = readMaybeGzip(path, what);
  if (!bytes.ok || !verify || verified.has(path)) return bytes;
  const expected = FASHION_MNIST_SHA256[name];
  const actual = createHash('sha256').update(bytes.value).digest('hex');
  if (actual !== expected) {
    return fail(
      'bad-dataset',
      `Expected SHA-256 ${expected} for the content of ${path}, got ${actual}; restore the file (git checkout data/fashion-mnist) and see its README`,
    );
  }
  verified.add(path);
  return bytes;
}

/**
 * Loads a split of the embedded Fashion-MNIST: 60,000 (train) or 10,000 (test) images of
 * 1x28x28, 10 classes, balanced (6,000 or 1,000 per class).
 */
export function loadFashionMnist(split: Split, options: FashionMnistOptions = {}): Result<Dataset> {
  const dir = options.dir ?? fashionMnistDir();
  const verify = options.verify ?? true;
  const names = fashionMnistFileNames(split);
  const paths = { images: join(dir, `${names.images}.gz`), labels: join(dir, `${names.labels}.gz`) };

  const imageBytes = readVerified(dir, names.images, 'Fashion-MNIST images file', verify);
  if (!imageBytes.ok) return imageBytes;
  const labelBytes = readVerified(dir, names.labels, 'Fashion-MNIST labels file', verify);
  if (!labelBytes.ok) return labelBytes;
  const images = parseIdx(imageBytes.value, paths.images);
  if (!images.ok) return images;
  const labels = parseIdx(labelBytes.value, paths.labels);
  if (!labels.ok) return labels;
  return datasetFromIdx(images.value, labels.value, paths, {
    numClasses: FASHION_MNIST_CLASS_NAMES.length,
  });
}
