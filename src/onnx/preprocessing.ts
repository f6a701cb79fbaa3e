/** @file Preprocessing and class-label metadata stored in a model's metadata_props. */
import { fail, ok, type Result } from '../errors.js';
import type { Model } from './model.js';

/** How inputs are prepared: pixel / 255, then (x - mean[c]) / std[c]; input shape C x H x W. */
export interface Preprocessing {
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly inputShape: readonly number[];
}

/** Metadata keys we write. Other tools ignore them; ONNX keeps them. */
export const METADATA_KEYS = {
  mean: 'zipit.mean',
  std: 'zipit.std',
  inputShape: 'zipit.input_shape',
  /** Per output, comma-separated: the class label of each logit; outputs separated by ';'. */
  classes: 'zipit.classes',
} as const;

const list = (values: readonly number[]): string => values.join(',');

/** Metadata entries for a preprocessing. */
export function preprocessingMetadata(p: Preprocessing): Record<string, string> {
  return {
    [METADATA_KEYS.mean]: list(p.mean),
    [METADATA_KEYS.std]: list(p.std),
    [METADATA_KEYS.inputShape]: list(p.inputShape),
  };
}

function parseNumbers(text: string | undefined): number[] | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const values = text.split(',').map((v) => Number(v.trim()));
  return values.every((v) => Number.isFinite(v)) ? values : undefined;
}

/** The stored preprocessing, or undefined when the model has none (e.g. a PyTorch export). */
export function storedPreprocessing(model: Model): Preprocessing | undefined {
  const mean = parseNumbers(model.metadata[METADATA_KEYS.mean]);
  const std = parseNumbers(model.metadata[METADATA_KEYS.std]);
  const inputShape = parseNumbers(model.metadata[METADATA_KEYS.inputShape]);
  if (mean === undefined || std === undefined) return undefined;
  return { mean, std, inputShape: inputShape ?? [] };
}

/**
 * Picks the preprocessing: explicit flags win, then the model's metadata; with neither, a
 * Failure telling the user which flags to pass.
 */
export function resolvePreprocessing(
  model: Model,
  flags: { mean?: readonly number[]; std?: readonly number[] },
  path: string,
): Result<{ mean: readonly number[]; std: readonly number[] }> {
  const stored = storedPreprocessing(model);
  const mean = flags.mean ?? stored?.mean;
  const std = flags.std ?? stored?.std;
  if (mean === undefined || std === undefined) {
    return fail(
      'bad-argument',
      `${path} has no stored preprocessing; pass --mean and --std (e.g. --mean 0.2860 --std 0.3530 for Fashion-MNIST).`,
    );
  }
  if (std.some((s) => !(s > 0)))
    return fail('bad-argument', `Expected --std values > 0, got ${std.join(',')}`);
  return ok({ mean, std });
}

/** The class label of each logit of each output, if stored ('0,1,2;5,6' for two outputs). */
export function storedClassLabels(model: Model): number[][] | undefined {
  const text = model.metadata[METADATA_KEYS.classes];
  if (text === undefined || text === '') return undefined;
  const outputs = text.split(';').map(parseNumbers);
  return outputs.every((o) => o !== undefined) ? (outputs as number[][]) : undefined;
}

/** Metadata entry recording the class label of each logit of each output. */
export function classLabelsMetadata(
  labels: readonly (readonly number[])[],
): Record<string, string> {
  return { [METADATA_KEYS.classes]: labels.map(list).join(';') };
}
