/** @file Tests of the embedded Fashion-MNIST: location, checksums, sizes, class balance. */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { classCounts } from '../../src/data/dataset.js';
import {
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_SHA256,
  fashionMnistDir,
  loadFashionMnist,
} from '../../src/data/fashion-mnist.js';
import { encodeIdx } from '../../src/data/idx.js';
import { makeTempDir } from './helpers.js';

const repoDataDir = fileURLToPath(new URL('../../data/fashion-mnist/', import.meta.url));
const temp = makeTempDir();
after(() => temp.remove());

describe('embedded Fashion-MNIST', () => {
  it('is found in data/fashion-mnist relative to the module', () => {
    assert.equal(fashionMnistDir(), repoDataDir);
  });

  it('documents in its README exactly the checksums the loader checks', () => {
    const readme = readFileSync(join(repoDataDir, 'README.md'), 'utf8');
    const documented = Object.fromEntries(
      [...readme.matchAll(/^\| `([\w-]+)\.gz` \|.*\| `([0-9a-f]{64})` \|$/gm)].map((m) => [m[1], m[2]]),
    );
    assert.deepEqual(documented, FASHION_MNIST_SHA256);
  });

  it('has files whose decompressed SHA-256 match the documented ones', () => {
    for (const [name, sha256] of Object.entries(FASHION_MNIST_SHA256)) {
      const content = gunzipSync(readFileSync(join(repoDataDir, `${name}.gz`)));
      assert.equal(createHash('sha256').update(content).digest('hex'), sha256, name);
    }
  });

  it('loads train: 60000 images of 1x28x28, 6000 per class', () => {
    const ds = loadFashionMnist('train');
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    const { count, channels, height, width, numClasses } = ds.value;
    assert.deepEqual({ count, channels, height, width, numClasses }, {
      count: 60000,
      channels: 1,
      height: 28,
      width: 28,
      numClasses: 10,
    });
    assert.deepEqual(classCounts(ds.value), new Array(10).fill(6000));
    assert.equal(FASHION_MNIST_CLASS_NAMES.length, 10);
  });

  it('loads test: 10000 images, 1000 per class', () => {
    const ds = loadFashionMnist('test');
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    assert.equal(ds.value.count, 10000);
    assert.equal(ds.value.images.length, 10000 * 28 * 28);
    assert.deepEqual(classCounts(ds.value), new Array(10).fill(1000));
  });

  it('EXPECTED FAILURE - a modified file fails its checksum', () => {
    // A valid IDX pair with the official names but other content.
    const images = { dataType: 'uint8', dims: [1, 28, 28], data: new Uint8Array(784) } as const;
    const labels = { dataType: 'uint8', dims: [1], data: new Uint8Array(1) } as const;
    writeFileSync(join(temp.dir, 't10k-images-idx3-ubyte.gz'), gzipSync(encodeIdx(images)));
    writeFileSync(join(temp.dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(encodeIdx(labels)));
    const path = join(temp.dir, 't10k-images-idx3-ubyte.gz');
    const result = loadFashionMnist('test', { dir: temp.dir });
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    const actual = createHash('sha256').update(encodeIdx(images)).digest('hex');
    assert.equal(
      result.message,
      `Expected SHA-256 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b for the content of ${path}, got ${actual}; restore the file (git checkout data/fashion-mnist) and see its README`,
    );
    // Without verification the same files load.
    const unchecked = loadFashionMnist('test', { dir: temp.dir, verify: false });
    assert.ok(unchecked.ok);
    assert.equal(unchecked.value.count, 1);
  });

  it('EXPECTED FAILURE - missing files name the path', () => {
    const dir = join(temp.dir, 'absent');
    const result = loadFashionMnist('train', { dir });
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-not-found');
    assert.equal(
      result.message,
      `Expected the Fashion-MNIST images file at ${join(dir, 'train-images-idx3-ubyte.gz')}, but there is no such file`,
    );
  });
});
