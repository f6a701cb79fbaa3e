/** @file Shared fixtures for the data tests: temporary folders and small synthetic datasets. */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../../src/data/dataset.js';

/** A fresh temporary folder and a function that removes it. */
export function makeTempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'zipit-data-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A dataset whose image `i` is filled with the value `i % 256` and labelled `i % numClasses`,
 * so tests can tell which source image ended up where.
 */
export function makeDataset(
  count: number,
  numClasses: number,
  shape = { channels: 1, height: 2, width: 2 },
): Dataset {
  const size = shape.channels * shape.height * shape.width;
  const images = new Uint8Array(count * size);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    images.fill(i % 256, i * size, (i + 1) * size);
    labels[i] = i % numClasses;
  }
  return { images, labels, count, numClasses, ...shape };
}
