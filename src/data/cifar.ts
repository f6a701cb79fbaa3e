/** @file Reader for the CIFAR-10 binary version (cifar-10-binary.tar.gz, extracted). */

// Each record is one label byte, then 3072 pixel bytes: the 32x32 red plane, then green,
// then blue (CHW), the layout our models take, so images are copied without reordering.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail, ok, type Result } from '../errors.js';
import { createDataset, type Dataset, type Split } from './dataset.js';
import { readFileBytes } from './read-file.js';

/** Class names of CIFAR-10, indexed by label. */
export const CIFAR10_CLASS_NAMES: readonly string[] = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

/** Bytes of one image: 3 channels of 32x32. */
export const CIFAR10_IMAGE_BYTES = 3 * 32 * 32;

/** Bytes of one record: the label byte, then the image. */
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;

/** The folder the official archive extracts to; {@link loadCifar10} also looks inside it. */
export const CIFAR10_ARCHIVE_FOLDER = 'cifar-10-batches-bin';

/** The batch files of a split, in the order their records are concatenated. */
export function cifar10FileNames(split: Split): string[] {
  return split === 'train'
    ? [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`)
    : ['test_batch.bin'];
}

/**
 * Decodes one batch file's bytes. Any whole number of records is accepted (the official
 * files hold 10,000 each), so small files made by tests load too.
 *
 * @param source - The file's path, for the messages.
 */
export function parseCifar10Batch(
  bytes: Uint8Array,
  source: string,
): Result<{ images: Uint8Array; labels: Uint8Array; count: number }> {
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    return fail(
      'truncated',
      `Expected a whole number of ${CIFAR10_RECORD_BYTES}-byte CIFAR-10 records in ${source}, got ${bytes.length} bytes; the file is truncated or not the binary version`,
    );
  }
  const count = bytes.length / CIFAR10_RECORD_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const record = k * CIFAR10_RECORD_BYTES;
    const label = view.getUint8(record);
    if (label >= CIFAR10_CLASS_NAMES.length) {
      return fail(
        'bad-dataset',
        `Expected labels 0..9 in the CIFAR-10 file ${source}, got ${label} in record ${k}; CIFAR-100 files have two label bytes and are not supported`,
      );
    }
    labels[k] = label;
    images.set(bytes.subarray(record + 1, record + CIFAR10_RECORD_BYTES), k * CIFAR10_IMAGE_BYTES);
  }
  return ok({ images, labels, count });
}

/**
 * Loads a CIFAR-10 split from `dir`, the extracted binary version: either the
 * `cifar-10-batches-bin` folder itself or the folder containing it.
 */
export function loadCifar10(dir: string, split: Split): Result<Dataset> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    return fail('file-not-found', `Expected a CIFAR-10 folder at ${dir}, but there is no such folder`);
  }
  const names = cifar10FileNames(split);
  const nested = join(dir, CIFAR10_ARCHIVE_FOLDER);
  const root = !names.some((name) => existsSync(join(dir, name))) && existsSync(nested) ? nested : dir;

  const parts: Uint8Array[] = [];
  const labelParts: Uint8Array[] = [];
  for (const name of names) {
    const path = join(root, name);
    const bytes = readFileBytes(
      path,
      `CIFAR-10 batch file (binary version, cifar-10-binary.tar.gz)`,
    );
    if (!bytes.ok) return bytes;
    const batch = parseCifar10Batch(bytes.value, path);
    if (!batch.ok) return batch;
    parts.push(batch.value.images);
    labelParts.push(batch.value.labels);
  }
  const images = concat(parts);
  const labels = concat(labelParts);
  return createDataset(
    { images, labels, count: labels.length, channels: 3, height: 32, width: 32, numClasses: 10 },
    `CIFAR-10 ${split} in ${root}`,
  );
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const [first] = parts;
  if (parts.length === 1 && first) return first;
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
