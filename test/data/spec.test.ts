/** @file Tests of data spec and task split parsing. */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeIdx } from '../../src/data/idx.js';
import {
  formatDataSpec,
  loadData,
  parseDataSpec,
  parseTasks,
  type DataSpec,
} from '../../src/data/spec.js';
import { makeTempDir } from './helpers.js';

const temp = makeTempDir();
after(() => temp.remove());

// One line: every message the CLI prints is one line.
const FORMS =
  'Expected a data spec fashion-mnist:train|test, idx:<images-file>,<labels-file> or cifar10:<dir>:train|test, ';

describe('parseDataSpec', () => {
  it('parses every accepted form and formats it back', () => {
    const cases: [string, DataSpec][] = [
      ['fashion-mnist:train', { kind: 'fashion-mnist', split: 'train' }],
      ['fashion-mnist:test', { kind: 'fashion-mnist', split: 'test' }],
      ['idx:a/images.gz,b/labels', { kind: 'idx', imagesPath: 'a/images.gz', labelsPath: 'b/labels' }],
      ['cifar10:/data/cifar:train', { kind: 'cifar10', dir: '/data/cifar', split: 'train' }],
      ['cifar10:C:\\data\\cifar:test', { kind: 'cifar10', dir: 'C:\\data\\cifar', split: 'test' }],
    ];
    for (const [text, spec] of cases) {
      assert.deepEqual(parseDataSpec(text), { ok: true, value: spec }, text);
      assert.equal(formatDataSpec(spec), text);
    }
  });

  it('loads an idx spec', () => {
    const images = join(temp.dir, 'images');
    const labels = join(temp.dir, 'labels');
    writeFileSync(images, encodeIdx({ dataType: 'uint8', dims: [2, 1, 1], data: Uint8Array.of(3, 4) }));
    writeFileSync(labels, encodeIdx({ dataType: 'uint8', dims: [2], data: Uint8Array.of(1, 0) }));
    const ds = loadData(`idx:${images},${labels}`);
    assert.ok(ds.ok, ds.ok ? '' : ds.message);
    assert.equal(ds.value.count, 2);
  });

  it('EXPECTED FAILURE - unknown spec lists the accepted forms', () => {
    const result = parseDataSpec('mnist:train');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-argument');
    assert.equal(result.message, `${FORMS}got 'mnist:train' (unknown kind 'mnist')`);
  });

  it('EXPECTED FAILURE - malformed specs of known kinds', () => {
    const cases: [string, string][] = [
      ['fashion-mnist', "split must be train or test, got ''"],
      ['fashion-mnist:validation', "split must be train or test, got 'validation'"],
      ['idx:images-only', 'idx needs exactly two files separated by a comma'],
      ['idx:a,b,c', 'idx needs exactly two files separated by a comma'],
      ['cifar10:/data/cifar', 'cifar10 needs a folder and train or test'],
      ['cifar10::train', 'cifar10 needs a folder and train or test'],
    ];
    for (const [text, why] of cases) {
      const result = parseDataSpec(text);
      assert.ok(!result.ok, text);
      assert.equal(result.message, `${FORMS}got '${text}' (${why})`);
    }
  });

  it('EXPECTED FAILURE - a well-formed spec naming a missing file', () => {
    const result = loadData('idx:/no/such/images,/no/such/labels');
    assert.ok(!result.ok);
    assert.equal(result.reason, 'file-not-found');
    assert.equal(result.message, 'Expected the IDX images file at /no/such/images, but there is no such file');
  });
});

describe('parseTasks', () => {
  it('splits tasks on / and classes on , ignoring spaces', () => {
    assert.deepEqual(parseTasks('0,2,4,6,8/1,3,5,7,9', 10), {
      ok: true,
      value: [
        [0, 2, 4, 6, 8],
        [1, 3, 5, 7, 9],
      ],
    });
    assert.deepEqual(parseTasks(' 0, 1 / 2 / 3 ', 4), { ok: true, value: [[0, 1], [2], [3]] });
  });

  it('EXPECTED FAILURE - classes out of range', () => {
    const result = parseTasks('0,12/1', 10);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-argument');
    assert.equal(result.message, "Expected classes 0..9 in task 1 ('0,12') of '0,12/1', got 12");
  });

  it('EXPECTED FAILURE - a class in two tasks, or twice in one', () => {
    const across = parseTasks('0,1/1,2', 10);
    assert.ok(!across.ok);
    assert.equal(
      across.message,
      "Expected each class in one task only, got 1 in task 1 and in task 2 ('1,2') of '0,1/1,2'",
    );
    const within = parseTasks('0,0/1', 10);
    assert.ok(!within.ok);
    assert.equal(within.message, "Expected each class once in task 1 ('0,0') of '0,0/1', got 0 twice");
  });

  it('EXPECTED FAILURE - an empty task', () => {
    const result = parseTasks('0,1//2', 10);
    assert.ok(!result.ok);
    assert.equal(result.message, "Expected classes in task 2 ('') of '0,1//2', got none");
  });

  it('EXPECTED FAILURE - non-integer class indices', () => {
    for (const [text, item] of [
      ['0,1.5/2', '1.5'],
      ['a/1', 'a'],
      ['-1/2', '-1'],
      ['0,,1/2', ''],
    ]) {
      const result = parseTasks(text!, 10);
      assert.ok(!result.ok, text);
      assert.match(result.message, new RegExp(`^Expected integer class indices in task 1 .*, got '${item}'$`));
    }
  });
});
