/** @file Shared input handling for commands: model files, data specs, tasks, preprocessing, stop points, statistics files. */
import { fail, ok, type Result } from '../errors.js';
import { checkNotAnInput } from '../files/identity.js';
import { MAX_STATISTICS_BYTES, readRegularFile } from '../files/regular-file.js';
import {
  allStopPointIds,
  dataFilesOf,
  loadData,
  parseTasks,
  readModelFile,
  resolvePreprocessing,
  storedTasks,
  sumStatisticsFiles,
  takeBalanced,
  type Dataset,
  type Model,
  type StatisticsSet,
} from '../index.js';

/** Flags every data-feeding command accepts. */
export interface PreprocessingFlags {
  readonly mean?: number[];
  readonly std?: number[];
}

/** A model read from disk with its label (the path) and its preprocessing. */
export interface LoadedModel {
  readonly path: string;
  readonly model: Model;
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Reads each model file and resolves its preprocessing (flags win over stored metadata). */
export function loadModels(
  paths: readonly string[],
  flags: PreprocessingFlags,
): Result<LoadedModel[]> {
  const loaded: LoadedModel[] = [];
  for (const path of paths) {
    const model = readModelFile(path);
    if (!model.ok) return model;
    const preprocessing = resolvePreprocessing(model.value, flags, path);
    if (!preprocessing.ok) return preprocessing;
    loaded.push({ path, model: model.value, ...preprocessing.value });
  }
  return ok(loaded);
}

/**
 * Models merged together must see the same inputs: fails when their stored preprocessing
 * differs (the user can override it for all with --mean/--std).
 */
export function checkSamePreprocessing(models: readonly LoadedModel[]): Result<void> {
  const first = models[0];
  for (const other of models.slice(1)) {
    const same = (a: readonly number[], b: readonly number[]): boolean =>
      a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) < 1e-6);
    if (first !== undefined && (!same(first.mean, other.mean) || !same(first.std, other.std))) {
      return fail(
        'bad-argument',
        `${first.path} and ${other.path} expect different input preprocessing (mean ${first.mean.join(',')} std ${first.std.join(',')} vs mean ${other.mean.join(',')} std ${other.std.join(',')}); merged models read the same inputs, so pass --mean and --std for all.`,
      );
    }
  }
  return ok(undefined);
}

/**
 * Every file a command reads: its models, the files its data specs name, and `others` (e.g.
 * statistics files). No output may replace one of them (checkOutputPath's `protect`).
 */
export function commandInputs(
  models: readonly string[],
  dataSpecs: readonly string[],
  others: readonly string[] = [],
): string[] {
  return [...models, ...dataSpecs.flatMap((spec) => dataFilesOf(spec)), ...others];
}

/** The training and the test data of a command that trains, loaded in that order. */
export function loadSplits(
  trainSpec: string,
  testSpec: string,
): Result<{ train: Dataset; test: Dataset }> {
  const train = loadData(trainSpec);
  if (!train.ok) return train;
  const test = loadData(testSpec);
  if (!test.ok) return test;
  return ok({ train: train.value, test: test.value });
}

/** Fails when one of `outputs` is (or links to) one of `inputs`: no output may replace an input. */
export function checkNotInputs(
  outputs: readonly string[],
  inputs: readonly string[],
): Result<void> {
  for (const output of outputs) {
    const safe = checkNotAnInput(output, inputs);
    if (!safe.ok) return safe;
  }
  return ok(undefined);
}

/**
 * The tasks: `--tasks` when given; else the classes the models say they were trained on
 * (zipit's own models and merges store them); else one task of all the dataset's classes.
 */
export function resolveTasks(
  text: string | undefined,
  dataset: Dataset,
  models: readonly Model[] = [],
): Result<number[][]> {
  if (text !== undefined) return parseTasks(text, dataset.numClasses);
  const stored = models.length > 0 ? storedTasks(models) : undefined;
  return ok(stored ?? [Array.from({ length: dataset.numClasses }, (_, i) => i)]);
}

/** The merge data: `samples` images drawn evenly from `classes`, seeded. */
export function mergeData(
  dataset: Dataset,
  classes: readonly number[],
  samples: number,
  seed: number,
): Result<Dataset> {
  if (!Number.isInteger(samples) || samples < 1)
    return fail('bad-argument', `Expected --samples to be a positive integer, got ${samples}`);
  return takeBalanced(dataset, classes, Math.min(samples, dataset.count), seed);
}

/** A fraction as a percentage with one decimal. */
export function formatPercent(value: number): string {
  return `${(100 * value).toFixed(1)}%`;
}

/** Flags of every command that merges: models, their preprocessing, and the merge-data draw. */
export interface MergeInputFlags extends PreprocessingFlags {
  readonly data: string;
  readonly tasks?: string;
  readonly samples: number;
  readonly seed: number;
}

/** What a merging command starts from. */
export interface MergeInputs extends MergeSources {
  readonly tasks: number[][];
  /** The merge data: `samples` images of the tasks' classes, drawn evenly and seeded. */
  readonly data: Dataset;
}

/**
 * Loads K >= 2 models that share preprocessing, the dataset of `--data`, the tasks (against
 * `taskData` when given, e.g. the test set) and the merge-data draw.
 */
export function loadMergeInputs(
  paths: readonly string[],
  flags: MergeInputFlags,
  taskData?: Dataset,
): Result<MergeInputs> {
  if (paths.length < 2)
    return fail('bad-argument', `Expected at least 2 models, got ${paths.length}.`);
  const models = loadModels(paths, flags);
  if (!models.ok) return models;
  const shared = checkSamePreprocessing(models.value);
  if (!shared.ok) return shared;
  const dataset = loadData(flags.data);
  if (!dataset.ok) return dataset;
  const tasks = resolveTasks(
    flags.tasks,
    taskData ?? dataset.value,
    models.value.map((m) => m.model),
  );
  if (!tasks.ok) return tasks;
  const data = mergeData(dataset.value, tasks.value.flat(), flags.samples, flags.seed);
  if (!data.ok) return data;
  return ok({
    ...mergeSources(models.value),
    tasks: tasks.value,
    data: data.value,
  });
}

/** Loaded models as mergeModels and compareMethods take them. */
export interface MergeSources {
  readonly models: Model[];
  /** Each model's label in messages and reports: its path. */
  readonly labels: string[];
  /** The preprocessing they share (checkSamePreprocessing): the first model's. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

function mergeSources(loaded: readonly LoadedModel[]): MergeSources {
  const first = loaded[0]!;
  return {
    models: loaded.map((m) => m.model),
    labels: loaded.map((m) => m.path),
    normalization: { mean: first.mean, std: first.std },
  };
}

/**
 * The stop points `--stop-points` names: 'all' of the model's, or comma-separated ids. When it
 * is absent: `fallback` of all the model's (which are then listed first, even for an id list),
 * or none.
 */
export function stopPointList(
  model: Model,
  text: string | undefined,
  fallback?: (all: string[]) => string[],
): Result<string[]> {
  if (fallback === undefined && text !== 'all') return ok(text?.split(',') ?? []);
  const all = allStopPointIds(model);
  if (!all.ok) return all;
  if (text === 'all') return ok(all.value);
  return ok(text !== undefined ? text.split(',') : (fallback?.(all.value) ?? []));
}

/** Reads statistics files (shards from `zipit stats`) and sums them. */
export function loadStatistics(paths: readonly string[]): Result<StatisticsSet> {
  const files: { label: string; bytes: Uint8Array }[] = [];
  for (const path of paths) {
    const bytes = readRegularFile(path, 'statistics file', MAX_STATISTICS_BYTES);
    if (!bytes.ok) return bytes;
    files.push({ label: path, bytes: bytes.value });
  }
  return sumStatisticsFiles(files);
}
