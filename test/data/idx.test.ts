/** @file Tests of the IDX reader and writer on files written to a temporary folder. */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  encodeIdx,
  loadIdxDataset,
  parseIdx,
  readIdxFile,
  type IdxArray,
} from '../../src/data/idx.js';
import { makeTempDir } from './helpers.js';

const temp = makeTempDir();
const path = (name: string) => join(temp.dir, name);

// 5 images of 3x4 whose pixels are 0..59, labels 0..4.
const images: IdxArray = {
  dataType: 'uint8',
  dims: [5, 3, 4],
  data: Uint8Array.from({ length: 60 }, (_, i) => i),
};
const labels: IdxArray = { dataType: 'uint8', dims: [5], data: Uint8Array.of(0, 1, 2, 3, 4) };

before(() => {
  writeFileSync(path('images'), encodeIdx(images));
  writeFileSync(path('labels'), encodeIdx(labels));
  writeFileSync(path('images.gz'), gzipSync(encodeIdx(images)));
  writeFileSync(path('labels.gz'), gzipSync(encodeIdx(labels)));
  // No .gz suffix: gzip must be recognised by its magic bytes, not the name.
  writeFileSync(path('labels-gzip-no-suffix'), gzipSync(encodeIdx(labels)));
});
after(() => temp.remove());

describe('IDX encoding', () => {
  it('writes the MNIST header: 00 00 08 03, then big-endian dims', () => {
    const bytes = encodeIdx(images);
    assert.deepEqual([...bytes.subarray(0, 16)], [0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4]);
    assert.equal(bytes.length, 16 + 60);
  });

  it('round-trips every element type, multi-byte ones big-endian', () => {
    const arrays: IdxArray[] = [
      { dataType: 'int8', dims: [3], data: Int8Array.of(-128, 0, 127) },
      { dataType: 'int16', dims: [2, 2], data: Int16Array.of(-32768, -1, 256, 32767) },
      { dataType: 'int32', dims: [3], data: Int32Array.of(-(2 ** 31), 1, 2 ** 31 - 1) },
      { dataType: 'float32', dims: [2], data: Float32Array.of(1.5, -0.25) },
      { dataType: 'float64', dims: [1, 2], data: Float64Array.of(Math.PI, -1e300) },
    ];
    for (const array of arrays) {
      const parsed = parseIdx(encodeIdx(array), array.dataType);
      assert.ok(parsed.ok, `${array.dataType}: ${parsed.ok || parsed.message}`);
      assert.deepEqual(parsed.value, array);
    }
    // 256 as int16 big-endian is 01 00.
    const bytes = encodeIdx(arrays[1]!);
    assert.deepEqual([...bytes.subarray(12 + 4, 12 + 6)], [1, 0]);
  });
});

describe('IDX files', () => {
  it('reads plain and gzip files identically', () => {
    for (const name of ['images', 'images.gz']) {
      const read = readIdxFile(path(name));
      assert.ok(read.ok, read.ok ? '' : read.message);
      assert.deepEqual(read.value.dims, [5, 3, 4]);
      assert.deepEqual([...read.value.data], [...images.data]);
    }
    const noSuffix = readIdxFile(path('labels-gzip-no-suffix'));
    assert.ok(noSuffix.ok);
    assert.deepEqual([...noSuffix.value.data], [0, 1, 2, 3, 4]);
  });

  it('loads an images + labels pair as a one-channel dataset', () => {
    const ds = loadIdxDataset(path('images.gz'), path('labels'));
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    const { count, channels, height, width, numClasses } = ds.value;
    assert.deepEqual({ count, channels, height, width, numClasses }, {
      count: 5,
      channels: 1,
      height: 3,
      width: 4,
      numClasses: 5,
    });
    assert.deepEqual([...ds.value.images.subarray(12, 24)], [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
    assert.deepEqual([...ds.value.labels], [0, 1, 2, 3, 4]);
    const wider = loadIdxDataset(path('images'), path('labels'), { numClasses: 10 });
    assert.ok(wider.ok);
    assert.equal(wider.value.numClasses, 10);
  });

  it('EXPECTED FAILURE - missing file names the path', () => {
    const missing = path('no-such-images.gz');
    const result = loadIdxDataset(missing, path('labels'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-not-found');
    assert.equal(result.message, `Expected the IDX images file at ${missing}, but there is no such file`);
  });

  it('EXPECTED FAILURE - truncated plain file', () => {
    writeFileSync(path('truncated'), encodeIdx(images).subarray(0, 40));
    const result = readIdxFile(path('truncated'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'truncated');
    assert.equal(
      result.message,
      `Expected 5x3x4 uint8 (76 bytes) in ${path('truncated')} as its header says, got 40 bytes; the file is truncated`,
    );
  });

  it('EXPECTED FAILURE - truncated header', () => {
    writeFileSync(path('short-header'), Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 5));
    const result = readIdxFile(path('short-header'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'truncated');
    assert.match(result.message, /^Expected an IDX header of 16 bytes \(3 dims\) in .*, got 8 bytes/);
  });

  it('EXPECTED FAILURE - truncated gzip file', () => {
    const gz = gzipSync(encodeIdx(images));
    writeFileSync(path('truncated.gz'), gz.subarray(0, gz.length - 10));
    const result = readIdxFile(path('truncated.gz'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'truncated');
    assert.equal(
      result.message,
      `${path('truncated.gz')} is a truncated gzip file (unexpected end of file); fetch it again`,
    );
  });

  it('EXPECTED FAILURE - wrong magic (a zip file)', () => {
    writeFileSync(path('wrong-magic'), Uint8Array.of(0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0));
    const result = readIdxFile(path('wrong-magic'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(
      result.message,
      `Expected an IDX file in ${path('wrong-magic')} (magic 00 00 <type 08|09|0b|0c|0d|0e> <dims>, e.g. 00 00 08 03 for images), got 50 4b 03 04`,
    );
  });

  it('EXPECTED FAILURE - unknown element type', () => {
    const result = parseIdx(Uint8Array.of(0, 0, 0x07, 1, 0, 0, 0, 0), 'odd-type');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.match(result.message, /got 00 00 07 01$/);
  });

  it('EXPECTED FAILURE - a header of 255 huge dims is refused in one short line', () => {
    // Found by the CLI fuzzer: every dim was listed (2,933 characters) and the size was Infinity.
    const bytes = new Uint8Array(4 + 4 * 255).fill(0xff);
    bytes.set([0, 0, 0x08, 255]);
    const result = parseIdx(bytes, 'many-dims');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.match(result.message, /at most 4 dims .*got 255/);
    assert.ok(result.message.length < 200, result.message);
  });

  it('EXPECTED FAILURE - bytes after the data', () => {
    const bytes = new Uint8Array(encodeIdx(labels).length + 3);
    bytes.set(encodeIdx(labels));
    const result = parseIdx(bytes, 'padded');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(result.message, 'Expected 5 uint8 (13 bytes) in padded as its header says, got 3 bytes more');
  });

  it('EXPECTED FAILURE - images and labels count mismatch', () => {
    const fewer: IdxArray = { dataType: 'uint8', dims: [4], data: Uint8Array.of(0, 1, 2, 3) };
    writeFileSync(path('labels-4'), encodeIdx(fewer));
    const result = loadIdxDataset(path('images'), path('labels-4'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(
      result.message,
      `Expected as many labels as images, got 5 images in ${path('images')} and 4 labels in ${path('labels-4')}`,
    );
  });

  it('EXPECTED FAILURE - images and labels swapped', () => {
    const result = loadIdxDataset(path('labels'), path('images'));
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(
      result.message,
      `Expected IDX images of uint8 with 3 dims (count x height x width) in ${path('labels')}, got uint8 with dims 5`,
    );
  });

  it('EXPECTED FAILURE - a label beyond numClasses', () => {
    const result = loadIdxDataset(path('images'), path('labels'), { numClasses: 3 });
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.equal(
      result.message,
      `Expected labels 0..2 in ${path('images')} + ${path('labels')}, got 3 for image 3`,
    );
  });

  it('EXPECTED FAILURE - a folder instead of a file', () => {
    const result = readIdxFile(temp.dir);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-unreadable');
    assert.match(result.message, /^Cannot read the IDX file at .*: EISDIR/);
  });
});
