/** @file The `train` and `train-pair` commands on bad input: one clear line, exit 1, nothing written. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../helpers.js';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

function zipit(args: readonly string[]): { code: number | null; stderr: string; stdout: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
  });
  return { code: result.status, stderr: result.stderr.trim(), stdout: result.stdout.trim() };
}

describe('zipit train / train-pair', () => {
  const dir = temporaryDirectory('zipit-train-');
  const cases: Array<[string, string[], string]> = [
    [
      'EXPECTED FAILURE - unknown architecture',
      ['train', '--arch', 'resnet50', '--classes', '0,1', '--out', join(dir, 'a.onnx')],
      'zipit: error: Expected --arch to be one of mlp, vgg, resnet20, vit, got resnet50',
    ],
    [
      'EXPECTED FAILURE - width out of range',
      [
        'train',
        '--arch',
        'resnet20',
        '--width',
        '65',
        '--classes',
        '0,1',
        '--out',
        join(dir, 'a.onnx'),
      ],
      'zipit: error: Expected --width to be an integer in [1, 64], got 65',
    ],
    [
      'EXPECTED FAILURE - class out of range',
      ['train', '--arch', 'resnet20', '--classes', '0,12', '--out', join(dir, 'a.onnx')],
      'zipit: error: Expected classes 0..9 in --classes, got 12',
    ],
    [
      'EXPECTED FAILURE - unknown head',
      [
        'train',
        '--arch',
        'mlp',
        '--classes',
        '0,1',
        '--head',
        'shared',
        '--out',
        join(dir, 'a.onnx'),
      ],
      'zipit: error: Expected --head to be all or own, got shared',
    ],
    [
      'EXPECTED FAILURE - unwritable output',
      ['train', '--arch', 'mlp', '--classes', '0,1', '--out', join(dir, 'missing', 'a.onnx')],
      `zipit: error: Cannot write ${join(dir, 'missing', 'a.onnx')} (ENOENT); check that its folder exists and is writable.`,
    ],
    [
      'EXPECTED FAILURE - output is a directory',
      ['train', '--arch', 'mlp', '--classes', '0,1', '--out', dir],
      `zipit: error: Output path ${dir} is a directory; give a file name.`,
    ],
    [
      'EXPECTED FAILURE - split with overlapping tasks',
      ['train-pair', '--arch', 'mlp', '--split', '0,1/1,2', '--out', join(dir, 'pair')],
      "zipit: error: Expected each class in one task only, got 1 in task 1 and in task 2 ('1,2') of '0,1/1,2'",
    ],
    [
      'EXPECTED FAILURE - one seed for two models',
      [
        'train-pair',
        '--arch',
        'mlp',
        '--split',
        '0,1/2,3',
        '--seeds',
        '1',
        '--out',
        join(dir, 'pair'),
      ],
      "zipit: error: Expected --seeds to be two integers like 1,2, got '1'",
    ],
    [
      'EXPECTED FAILURE - pair output folder is a file',
      ['train-pair', '--arch', 'mlp', '--split', '0,1/2,3', '--out', MAIN],
      `zipit: error: Expected --out to be a folder, got the file ${MAIN}.`,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(name, () => {
      const result = zipit(args);
      assert.equal(result.code, 1);
      assert.equal(result.stderr, message);
      assert.deepEqual(readdirSync(dir), [], 'nothing was written');
      assert.ok(!existsSync(join(dir, 'pair')));
    });
  }
});
