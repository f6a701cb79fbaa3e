/** @file Runs models over a dataset and scores joint and per-task accuracy. */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import { batches, checkImageShape, type Dataset } from '../data/dataset.js';
import type { Model } from '../onnx/model.js';
import { modelImageShape, scoredOutputs, staticBatch } from '../onnx/model-io.js';
import { storedClassLabels } from '../onnx/preprocessing.js';
import type { ProgressListener } from '../progress.js';
import { createSession } from '../runtime/session.js';
import { scoreTasks, type Accuracy, type ScoreSource } from './metrics.js';

/** A model to evaluate with the preprocessing its inputs need. */
export interface EvalModel {
  readonly model: Model;
  readonly label: string;
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Evaluation settings. */
export interface EvalOptions {
  readonly batchSize?: number;
  readonly threads?: number;
  readonly onProgress?: ProgressListener;
}

/** The score sources of one model on `dataset`: each graph output with its class labels (stored, or 0..n-1). */
export async function modelScores(
  entry: EvalModel,
  dataset: Dataset,
  options: EvalOptions = {},
  step: () => void = () => {},
): Promise<Result<ScoreSource[]>> {
  const expected = modelImageShape(entry.model);
  if (expected !== undefined) {
    const check = checkImageShape(dataset, expected, entry.label);
    if (!check.ok) return check;
  }
  const session = await createSession(entry.model, { threads: options.threads ?? 2 });
  if (!session.ok) return fail(session.reason, `${entry.label}: ${session.message}`);
  const input = session.value.inputNames[0]!;
  const outputs = scoredOutputs(entry.model);
  const allLabels = storedClassLabels(entry.model);
  const graphOutputs = entry.model.graph.outputs.map((o) => o.name);
  const stored = allLabels
    ? outputs.map((name) => allLabels[graphOutputs.indexOf(name)])
    : undefined;
  const chunks: Float32Array[][] = outputs.map(() => []);
  const widths: number[] = outputs.map(() => 0);
  const data = batches(dataset, {
    batchSize: staticBatch(entry.model) ?? options.batchSize ?? 256,
    normalization: { mean: entry.mean, std: entry.std },
  });
  if (!data.ok) return data;
  try {
    for (const batch of data.value) {
      const result = await session.value.run({
        [input]: {
          dtype: 'float32',
          dims: [batch.size, dataset.channels, dataset.height, dataset.width],
          data: batch.input,
        },
      });
      outputs.forEach((name, o) => {
        const tensor = result[name]!;
        widths[o] = tensor.dims[tensor.dims.length - 1] ?? 1;
        chunks[o]!.push(Float32Array.from(tensor.data));
      });
      step();
    }
  } catch (error: unknown) {
    return runtimeFailure(`${entry.label}: onnxruntime failed`, error);
  } finally {
    await session.value.release();
  }
  return ok(
    outputs.map((_, o) => {
      const total = chunks[o]!.reduce((a, c) => a + c.length, 0);
      const logits = new Float32Array(total);
      let offset = 0;
      for (const c of chunks[o]!) {
        logits.set(c, offset);
        offset += c.length;
      }
      const labels = stored?.[o] ?? Array.from({ length: widths[o]! }, (_, i) => i);
      return { labels, logits };
    }),
  );
}

/**
 * Checks that scores can be read against `tasks` by the reference's rules: one output, or one
 * output (head) per task, head t belonging to task t.
 */
export function checkHeadsMatchTasks(
  outputs: number,
  tasks: readonly (readonly number[])[],
  what: string,
): Result<void> {
  if (outputs === 1 || outputs === tasks.length) return ok(undefined);
  return fail(
    'bad-argument',
    `${what} has ${outputs} outputs to score but ${tasks.length} task${tasks.length === 1 ? '' : 's'}; ` +
      `give --tasks one class set per model (or head), in the same order, e.g. --tasks 0,2,4,6,8/1,3,5,7,9`,
  );
}

/**
 * Evaluates one model (single or multi-output) or several (the ensemble) on `dataset`
 * against `tasks`, by the reference's scoring rules (see `scoreTasks`): several outputs are
 * heads, head t scored for task t. Only images of the tasks' classes count.
 */
export async function evaluateModels(
  models: readonly EvalModel[],
  dataset: Dataset,
  tasks: readonly (readonly number[])[],
  options: EvalOptions = {},
): Promise<Result<Accuracy>> {
  // Before any inference: the outputs must pair with the tasks.
  const heads = checkHeadsMatchTasks(
    models.reduce((n, entry) => n + scoredOutputs(entry.model).length, 0),
    tasks,
    models.length === 1 ? models[0]!.label : `The ensemble of ${models.length} models`,
  );
  if (!heads.ok) return heads;
  const sources: ScoreSource[] = [];
  const perModel = Math.ceil(dataset.count / (options.batchSize ?? 256));
  let done = 0;
  const step = (): void => {
    done += 1;
    options.onProgress?.({ phase: 'evaluate', done, total: perModel * models.length });
  };
  for (const entry of models) {
    const result = await modelScores(entry, dataset, options, step);
    if (!result.ok) return result;
    for (const source of result.value) {
      const bad = source.labels.find((l) => l >= dataset.numClasses || l < 0);
      if (bad !== undefined)
        return fail(
          'bad-argument',
          `${entry.label} scores class ${bad}, outside the dataset's ${dataset.numClasses} classes.`,
        );
    }
    sources.push(...result.value);
  }
  const covered = new Set(sources.flatMap((s) => s.labels));
  const missing = tasks.flat().find((c) => !covered.has(c));
  if (missing !== undefined)
    return fail('bad-argument', missingClassMessage(missing, covered, dataset));
  return ok(scoreTasks(sources, dataset.labels, tasks));
}

/**
 * Why a task class has no logit. A data label beyond every class the models score is the
 * data's fault, not --tasks': an IDX label of 200 makes 201 classes, and the old message named
 * class 10 of a 10-class model.
 */
function missingClassMessage(
  missing: number,
  covered: ReadonlySet<number>,
  dataset: Dataset,
): string {
  const classes = Math.max(-1, ...covered) + 1;
  const largest = dataset.labels.reduce((max, label) => Math.max(max, label), 0);
  // Only when the missing class lies beyond every scored one: a model of the even classes
  // missing class 1 is a --tasks matter.
  if (classes > 0 && missing >= classes && largest >= classes)
    return `The data has label ${largest}, out of range for a model with ${classes} classes (0-${classes - 1}); check --data.`;
  return `No model output scores class ${missing}; check --tasks.`;
}
