/** @file The metadata we store in a model's metadata_props: preprocessing, class labels, trained classes, scored outputs. */
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
  /**
   * The classes the model was trained on: one comma-separated set per task, sets separated by
   * '/' ('0,2,4,6,8' for a base model; '0,2,4,6,8/1,3,5,7,9' for a merge of two).
   */
  trainedClasses: 'zipit.trained_classes',
  /** The outputs to score (a multi-head model's heads), comma-separated. */
  scoreOutputs: 'zipit.score_outputs',
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
  const checked = checkNormalization(mean, std, {
    mean: flags.mean ? '--mean' : `the mean stored in ${path} (${METADATA_KEYS.mean})`,
    std: flags.std ? '--std' : `the std stored in ${path} (${METADATA_KEYS.std})`,
  });
  if (!checked.ok) return checked;
  return ok({ mean, std });
}

/** The smallest positive normal float32, 2^-126: below it a std loses precision, then becomes 0. */
const FLOAT32_MIN_NORMAL = 2 ** -126;
/** The largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Checks a normalisation before any data is read: every std must be a positive normal float32
 * (1e-300 is a positive double but 0 in float32), and `(pixel / 255 - mean) / std` must stay
 * finite in float32 for pixels in [0, 1]. Otherwise inputs overflow to infinity, statistics to
 * NaN, and the merge writes NaN weights. `source` says where each came from, for the message
 * ('--std', or the metadata of a model file): a stored value is not the user's flag.
 */
export function checkNormalization(
  mean: readonly number[],
  std: readonly number[],
  source: { readonly mean: string; readonly std: string },
): Result<void> {
  // A stored value is not the user's mistake: say which flag replaces it.
  const hint = (what: string, flag: string): string =>
    what === flag ? '' : `; pass ${flag} to override it`;
  const badStd = std.find((s) => !Number.isFinite(s) || s < FLOAT32_MIN_NORMAL || s > FLOAT32_MAX);
  if (badStd !== undefined) {
    const why =
      badStd > 0 && badStd < FLOAT32_MIN_NORMAL
        ? ` (${Math.fround(badStd) === 0 ? 'it is 0' : 'it loses precision'} in float32)`
        : '';
    return fail(
      'bad-argument',
      `Expected ${source.std} to be positive normal float32 values (from 1.2e-38 to 3.4e+38), got ${badStd}${why}${hint(source.std, '--std')}.`,
    );
  }
  const badMean = mean.find((m) => !Number.isFinite(m) || Math.abs(m) > FLOAT32_MAX);
  if (badMean !== undefined)
    return fail(
      'bad-argument',
      `Expected ${source.mean} to be finite float32 values, got ${badMean}${hint(source.mean, '--mean')}.`,
    );
  for (const [c, s] of std.entries()) {
    const m = mean[mean.length === 1 ? 0 : c] ?? 0;
    const largest = Math.max(Math.abs(m), Math.abs(1 - m)) / s;
    if (largest > FLOAT32_MAX)
      return fail(
        'bad-argument',
        `Normalised inputs would reach ${largest.toExponential(1)}, beyond float32: ${source.mean} (${m}) is too far from [0, 1] for ${source.std} (${s}).`,
      );
  }
  return ok(undefined);
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

/** The class sets the model was trained on (one per task), if stored. */
export function storedTrainedClasses(model: Model): number[][] | undefined {
  const text = model.metadata[METADATA_KEYS.trainedClasses];
  if (text === undefined || text.trim() === '') return undefined;
  const sets = text.split('/').map(parseNumbers);
  return sets.every((set) => set !== undefined && set.every(Number.isInteger))
    ? (sets as number[][])
    : undefined;
}

/** Metadata entry recording the class sets a model was trained on, one per task. */
export function trainedClassesMetadata(
  tasks: readonly (readonly number[])[],
): Record<string, string> {
  return { [METADATA_KEYS.trainedClasses]: tasks.map(list).join('/') };
}

/**
 * The tasks the models were trained on, from their metadata: each model's stored class sets in
 * order (an ensemble of A and B gives [A's, B's]; a merged model stores one set per head).
 * Undefined when some model stores none.
 */
export function storedTasks(models: readonly Model[]): number[][] | undefined {
  const sets = models.map(storedTrainedClasses);
  if (sets.some((s) => s === undefined)) return undefined;
  return sets.flatMap((s) => s!);
}
