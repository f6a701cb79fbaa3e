/** @file Parsing the command line's data words: specs (`fashion-mnist:train`) and task splits. */

import { fail, ok, unreachable, type Result } from '../errors.js';
import { join } from 'node:path';
import { CIFAR10_ARCHIVE_FOLDER, cifar10FileNames, loadCifar10 } from './cifar.js';
import type { Dataset, Split } from './dataset.js';
import { fashionMnistDir, fashionMnistFileNames, loadFashionMnist } from './fashion-mnist.js';
import { loadIdxDataset } from './idx.js';

/** A parsed dataset spec: which loader to call with which arguments. */
export type DataSpec =
  | { readonly kind: 'fashion-mnist'; readonly split: Split }
  | { readonly kind: 'idx'; readonly imagesPath: string; readonly labelsPath: string }
  | { readonly kind: 'cifar10'; readonly dir: string; readonly split: Split };

function badSpec(spec: string, why: string): Result<never> {
  return fail(
    'bad-argument',
    `Expected a data spec fashion-mnist:train|test, idx:<images-file>,<labels-file> or cifar10:<dir>:train|test, got '${spec}' (${why})`,
  );
}

function parseSplit(text: string): Split | undefined {
  return text === 'train' || text === 'test' ? text : undefined;
}

/** Parses a dataset spec without touching the file system. */
export function parseDataSpec(spec: string): Result<DataSpec> {
  const text = spec.trim();
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  switch (kind) {
    case 'fashion-mnist': {
      const split = parseSplit(rest);
      return split ? ok({ kind, split }) : badSpec(spec, `split must be train or test, got '${rest}'`);
    }
    case 'idx': {
      const files = rest.split(',');
      const [imagesPath, labelsPath] = files;
      if (files.length !== 2 || !imagesPath || !labelsPath) {
        return badSpec(spec, 'idx needs exactly two files separated by a comma');
      }
      return ok({ kind, imagesPath, labelsPath });
    }
    case 'cifar10': {
      // The split is after the LAST colon so a directory may contain colons (C:\data).
      const last = rest.lastIndexOf(':');
      const dir = rest.slice(0, Math.max(last, 0));
      const split = parseSplit(rest.slice(last + 1));
      if (last < 0 || !dir || !split) return badSpec(spec, 'cifar10 needs a folder and train or test');
      return ok({ kind, dir, split });
    }
    default:
      return badSpec(spec, `unknown kind '${kind}'`);
  }
}

/** Writes a spec back in the form {@link parseDataSpec} reads, e.g. for reports. */
export function formatDataSpec(spec: DataSpec): string {
  switch (spec.kind) {
    case 'fashion-mnist':
      return `fashion-mnist:${spec.split}`;
    case 'idx':
      return `idx:${spec.imagesPath},${spec.labelsPath}`;
    case 'cifar10':
      return `cifar10:${spec.dir}:${spec.split}`;
    default:
      return unreachable(spec);
  }
}

/** Loads the dataset a parsed spec names. */
export function loadDataSpec(spec: DataSpec): Result<Dataset> {
  switch (spec.kind) {
    case 'fashion-mnist':
      return loadFashionMnist(spec.split);
    case 'idx':
      return loadIdxDataset(spec.imagesPath, spec.labelsPath);
    case 'cifar10':
      return loadCifar10(spec.dir, spec.split);
    default:
      return unreachable(spec);
  }
}

/**
 * Every file a parsed spec may read, so that a command can refuse to write over any of them:
 * both IDX files; for CIFAR-10 the batch files of both splits, in the folder and in the
 * archive's folder inside it (the loader picks one); the embedded Fashion-MNIST files.
 */
export function dataSpecFiles(spec: DataSpec): string[] {
  switch (spec.kind) {
    case 'fashion-mnist': {
      const names = fashionMnistFileNames(spec.split);
      return [names.images, names.labels].map((name) => join(fashionMnistDir(), `${name}.gz`));
    }
    case 'idx':
      return [spec.imagesPath, spec.labelsPath];
    case 'cifar10': {
      const names = [...cifar10FileNames('train'), ...cifar10FileNames('test')];
      return [spec.dir, join(spec.dir, CIFAR10_ARCHIVE_FOLDER)].flatMap((root) =>
        names.map((name) => join(root, name)),
      );
    }
    default:
      return unreachable(spec);
  }
}

/** The files a spec string may read ({@link dataSpecFiles}); none for a spec that does not parse. */
export function dataFilesOf(spec: string): string[] {
  const parsed = parseDataSpec(spec);
  return parsed.ok ? dataSpecFiles(parsed.value) : [];
}

/** Parses and loads a dataset spec string in one step. */
export function loadData(spec: string): Result<Dataset> {
  const parsed = parseDataSpec(spec);
  return parsed.ok ? loadDataSpec(parsed.value) : parsed;
}

/**
 * Parses a task split: tasks separated by `/`, each a comma-separated list of class indices,
 * e.g. `'0,2,4,6,8/1,3,5,7,9'` gives `[[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]`. Spaces are ignored.
 * Tasks must be non-empty and disjoint; they need not cover every class.
 *
 * @param numClasses - Size of the label space; every class must be in `[0, numClasses)`.
 */
export function parseTasks(text: string, numClasses: number): Result<number[][]> {
  const tasks: number[][] = [];
  const owner = new Map<number, number>();
  for (const [t, taskText] of text.split('/').entries()) {
    const name = `task ${t + 1} ('${taskText.trim()}') of '${text}'`;
    if (taskText.trim() === '') return fail('bad-argument', `Expected classes in ${name}, got none`);
    const task: number[] = [];
    for (const item of taskText.split(',').map((s) => s.trim())) {
      if (!/^\d+$/.test(item)) {
        return fail('bad-argument', `Expected integer class indices in ${name}, got '${item}'`);
      }
      const k = Number(item);
      if (k >= numClasses) {
        return fail('bad-argument', `Expected classes 0..${numClasses - 1} in ${name}, got ${k}`);
      }
      const previous = owner.get(k);
      if (previous === t) {
        return fail('bad-argument', `Expected each class once in ${name}, got ${k} twice`);
      }
      if (previous !== undefined) {
        return fail(
          'bad-argument',
          `Expected each class in one task only, got ${k} in task ${previous + 1} and in ${name}`,
        );
      }
      owner.set(k, t);
      task.push(k);
    }
    tasks.push(task);
  }
  return ok(tasks);
}
