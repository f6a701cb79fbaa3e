/** @file Tests of the CIFAR-10 binary reader on batch files the test writes. */

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CIFAR10_ARCHIVE_FOLDER,
  CIFAR10_RECORD_BYTES,
  cifar10FileNames,
  loadCifar10,
} from '../../src/data/cifar.js';
import { makeTempDir } from './helpers.js';

const temp = makeTempDir();

/**
 * A batch of `count` records; record `r` of batch `batch` has label `(batch + r) % 10` and
 * channel `c` filled with `10 * batch + r + 100 * c`, so origin and channel order are visible.
 */
function batchBytes(batch: number, count: number): Uint8Array {
  const bytes = new Uint8Array(count * CIFAR10_RECORD_BYTES);
  for (let r = 0; r < count; r++) {
    const record = r * CIFAR10_RECORD_BYTES;
    bytes[record] = (batch + r) % 10;
    for (let c = 0; c < 3; c++) {
      const start = record + 1 + c * 1024;
      bytes.fill(10 * batch + r + 100 * c, start, start + 1024);
    }
  }
  return bytes;
}

before(() => {
  // Train files inside the archive's folder (as extracted), test file at the top level.
  const nested = join(temp.dir, CIFAR10_ARCHIVE_FOLDER);
  mkdirSync(nested);
  cifar10FileNames('train').forEach((name, b) => writeFileSync(join(nested, name), batchBytes(b, 3)));
  writeFileSync(join(temp.dir, 'test_batch.bin'), batchBytes(7, 4));
});
after(() => temp.remove());

describe('CIFAR-10 binary reader', () => {
  it('names the official batch files', () => {
    assert.deepEqual(cifar10FileNames('train'), [
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
      'data_batch_5.bin',
    ]);
    assert.deepEqual(cifar10FileNames('test'), ['test_batch.bin']);
  });

  it('loads the five train batches in order, CHW, from the archive folder inside dir', () => {
    const ds = loadCifar10(temp.dir, 'train');
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    const { count, channels, height, width, numClasses } = ds.value;
    assert.deepEqual({ count, channels, height, width, numClasses }, {
      count: 15,
      channels: 3,
      height: 32,
      width: 32,
      numClasses: 10,
    });
    assert.deepEqual([...ds.value.labels], [0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6]);
    // Image 4 is record 1 of batch 1: channels filled with 11, 111, 211.
    const image = ds.value.images.subarray(4 * 3072, 5 * 3072);
    assert.deepEqual([image[0], image[1023], image[1024], image[2047], image[2048], image[3071]], [
      11, 11, 111, 111, 211, 211,
    ]);
  });

  it('loads the test batch', () => {
    const ds = loadCifar10(temp.dir, 'test');
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    assert.equal(ds.value.count, 4);
    assert.deepEqual([...ds.value.labels], [7, 8, 9, 0]);
  });

  it('EXPECTED FAILURE - missing folder', () => {
    const dir = join(temp.dir, 'nowhere');
    const result = loadCifar10(dir, 'test');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-not-found');
    assert.equal(result.message, `Expected a CIFAR-10 folder at ${dir}, but there is no such folder`);
  });

  it('EXPECTED FAILURE - missing batch file names it and the version to download', () => {
    const dir = join(temp.dir, CIFAR10_ARCHIVE_FOLDER);
    const result = loadCifar10(dir, 'test');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-not-found');
    assert.equal(
      result.message,
      `Expected the CIFAR-10 batch file (binary version, cifar-10-binary.tar.gz) at ${join(dir, 'test_batch.bin')}, but there is no such file`,
    );
  });

  it('EXPECTED FAILURE - truncated batch file', () => {
    const dir = join(temp.dir, 'truncated');
    mkdirSync(dir);
    writeFileSync(join(dir, 'test_batch.bin'), batchBytes(0, 2).subarray(0, 5000));
    const result = loadCifar10(dir, 'test');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'truncated');
    assert.equal(
      result.message,
      `Expected a whole number of 3073-byte CIFAR-10 records in ${join(dir, 'test_batch.bin')}, got 5000 bytes; the file is truncated or not the binary version`,
    );
  });

  it('EXPECTED FAILURE - label outside 0..9', () => {
    const dir = join(temp.dir, 'bad-label');
    mkdirSync(dir);
    const bytes = batchBytes(0, 2);
    bytes[CIFAR10_RECORD_BYTES] = 57;
    writeFileSync(join(dir, 'test_batch.bin'), bytes);
    const result = loadCifar10(dir, 'test');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.match(result.message, /got 57 in record 1; CIFAR-100 files have two label bytes/);
  });
});
