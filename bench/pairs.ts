/**
 * @file The pairs the accuracy benches merge: a pair folder and its tasks and preprocessing.
 *
 * A pair is `dir` (a.onnx and b.onnx) or `dir:a-bn.onnx,b-bn.onnx` to pick the files. Tasks come
 * from pair.json, else the models' trained classes, else each model's `classes` in a.json /
 * b.json beside it (a folder still training); preprocessing from pair.json, else the models'
 * metadata, else Fashion-MNIST's 0.286 / 0.353.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModelFile } from '../src/onnx/files.js';
import type { Model } from '../src/onnx/model.js';
import { storedPreprocessing, storedTasks } from '../src/onnx/preprocessing.js';

/** One pair, loaded. */
export interface Pair {
  /** The spec it was loaded from. */
  readonly spec: string;
  readonly dir: string;
  readonly names: string[];
  readonly models: Model[];
  readonly tasks: number[][];
  readonly normalization: { mean: readonly number[]; std: readonly number[] };
}

/** Loads a pair; throws with the folder's name when it cannot (benches stop on bad input). */
export function loadPair(spec: string): Pair {
  const [dir, files] = spec.split(':') as [string, string | undefined];
  const names = files?.split(',') ?? ['a.onnx', 'b.onnx'];
  const models = names.map((n) => {
    const model = readModelFile(join(dir, n));
    if (!model.ok) throw new Error(model.message);
    return model.value;
  });
  const pairFile = join(dir, 'pair.json');
  const pair = existsSync(pairFile)
    ? (JSON.parse(readFileSync(pairFile, 'utf8')) as {
        tasks?: number[][];
        preprocessing?: { mean: number[]; std: number[] };
      })
    : undefined;
  const logged = names.map((n) => join(dir, `${n.replace(/(-bn)?\.onnx$/, '')}.json`));
  const tasks =
    pair?.tasks ??
    storedTasks(models) ??
    (logged.every((f) => existsSync(f))
      ? logged.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { classes: number[] }).classes)
      : undefined);
  if (tasks === undefined) throw new Error(`${dir}: no pair.json and no trained classes stored`);
  const stored = storedPreprocessing(models[0]!);
  return {
    spec,
    dir,
    names,
    models,
    tasks,
    normalization: {
      mean: pair?.preprocessing?.mean ?? stored?.mean ?? [0.286],
      std: pair?.preprocessing?.std ?? stored?.std ?? [0.353],
    },
  };
}

/** The held-out PyTorch pairs on disk (BatchNorm-kept exports), pair 0 (the tuning pair) first. */
export function torchPairs(root = 'runs/torch-pairs'): string[] {
  const pairs: string[] = [];
  for (let p = 0; p < 10; p++) {
    const dir = join(root, `pair-${p}`);
    if (existsSync(join(dir, 'a-bn.onnx')) && existsSync(join(dir, 'b-bn.onnx')))
      pairs.push(`${dir}:a-bn.onnx,b-bn.onnx`);
  }
  return pairs;
}
