/** @file Trains a zoo model on onnxruntime: one session runs the step graph, the loop only fills
 * batches and feeds the learning rate; the result is the zoo's inference model with trained
 * weights and running statistics. Also scores a model's task accuracy on a test set.
 */
import { batches, checkClasses, selectClasses, type Dataset } from '../data/dataset.js';
import { fail, ok, type Result } from '../errors.js';
import type { Model } from '../onnx/model.js';
import { encodeModel } from '../onnx/model.js';
import { float32Tensor, type Tensor } from '../onnx/tensor.js';
import type { ProgressListener } from '../progress.js';
import { createSession } from '../runtime/session.js';
import { nchwcBlockSize } from '../runtime/nchwc.js';
import { createStatefulSession } from '../runtime/training-session.js';
import { Random } from '../tensor/random.js';
import { ARCHITECTURES, buildZooModel, type Architecture } from '../zoo/architectures.js';
import { channelStatistics, fillAugmentedBatch, type Augmentation } from './augment.js';
import { planTraining } from './plan.js';
import { learningRateAt, warmupStepsOf, type Schedule } from './schedule.js';
import { buildStepGraph, momentumName, type ConvWeightGrad } from './step-graph.js';

/** Which logits the model gets: one per class of the label space, or one per trained class. */
export type Head = 'all' | 'own';

/** Everything that defines a training run; equal options and data give identical weights. */
export interface TrainOptions {
  readonly arch: Architecture;
  readonly width: number;
  /** Seeds initialisation, shuffling and augmentation. */
  readonly seed: number;
  /** The classes (labels of the dataset) this model learns. */
  readonly classes: readonly number[];
  /** Default 'all': a head over every class, as ZipIt!'s shared-head experiments use. */
  readonly head?: Head;
  readonly epochs: number;
  /** Default 128. The last partial batch of an epoch is dropped (the step graph has a fixed batch). */
  readonly batchSize?: number;
  /** Peak learning rate of the schedule (default {@link defaultLearningRate} of the architecture). */
  readonly learningRate?: number;
  /** Default 0.9. */
  readonly momentum?: number;
  /** Default {@link DEFAULT_WEIGHT_DECAY}. */
  readonly weightDecay?: number;
  /** Which parameters decay: default 'all' (PyTorch's SGD default); 'weights': Conv/Gemm weights only. */
  readonly decay?: 'all' | 'weights';
  /**
   * Default 0. With eps > 0 a target keeps 1 - eps on its class and spreads eps evenly over the
   * model's trained classes, never over the others: it learns nothing about unseen classes.
   */
  readonly labelSmoothing?: number;
  /**
   * Default 'linear': 15% linear warm-up, then linear decay to 0 (the reference's recipe);
   * 'cosine': 3% warm-up, then cosine.
   */
  readonly schedule?: Schedule;
  /** Default: padding 2 and flips (28x28 images: 4 px crops cut too much of a garment). */
  readonly augmentation?: Augmentation;
  /** onnxruntime threads (default 2). */
  readonly threads?: number;
  readonly convWeightGrad?: ConvWeightGrad;
  /**
   * Default true: run convolutions in onnxruntime's blocked NCHWc layout where this machine's
   * onnxruntime has it (same results to float rounding; faster, see bench/train.ts).
   */
  readonly blockedConvolutions?: boolean;
  readonly onProgress?: ProgressListener;
}

/** Figures of a finished run. */
export interface TrainSummary {
  /** Mean loss and training accuracy (on augmented batches) of each epoch. */
  readonly epochs: readonly { readonly loss: number; readonly accuracy: number }[];
  readonly imagesPerSecond: number;
  readonly seconds: number;
}

/** A trained model and how training went. */
export interface TrainedModel {
  readonly model: Model;
  readonly summary: TrainSummary;
}

/**
 * The peak learning rate `zipit train` uses unless told. 0.2 for ResNet-20: its pairs merge far
 * better than at the reference's 0.1 (ZipIt! +9 to +12 points on two even/odd seed pairs, the
 * task accuracies unchanged; 0.05 lost 5 and 23; docs/RESULTS.md "The peak learning rate").
 * 0.2 for the ViT (scripts/torch-train-vit.py's choice over 0.02-0.8, where 0.1 lost 9 points
 * after 2 epochs and 0.3 lost 3 after 6). 0.1 for the VGG and the MLP (the CIFAR recipe).
 */
export function defaultLearningRate(arch: Architecture): number {
  return arch === 'vit' || arch === 'resnet20' ? 0.2 : 0.1;
}

/** The peak learning rate of every model trained before models recorded theirs (`zipit.lr`). */
export const UNRECORDED_LEARNING_RATE = 0.1;

/** Weight decay `zipit train` uses unless told (the reference's recipe, PyTorch's SGD `weight_decay`). */
export const DEFAULT_WEIGHT_DECAY = 5e-4;

/**
 * What a trained model records of how it was trained (beside the zoo's arch, width and seed):
 * its classes, epochs and recipe, defaults filled in. Label smoothing is recorded only when on.
 */
export function recipeMetadata(
  options: Pick<
    TrainOptions,
    | 'arch'
    | 'classes'
    | 'epochs'
    | 'learningRate'
    | 'schedule'
    | 'decay'
    | 'weightDecay'
    | 'labelSmoothing'
  >,
): Record<string, string> {
  return {
    'zipit.trained_classes': options.classes.join(','),
    'zipit.epochs': String(options.epochs),
    'zipit.lr': String(options.learningRate ?? defaultLearningRate(options.arch)),
    'zipit.schedule': options.schedule ?? 'linear',
    'zipit.decay': options.decay ?? 'all',
    'zipit.weight_decay': String(options.weightDecay ?? DEFAULT_WEIGHT_DECAY),
    ...(options.labelSmoothing ? { 'zipit.label_smoothing': String(options.labelSmoothing) } : {}),
  };
}

/** Checks options that do not need the data; the messages name the CLI flags. */
export function checkTrainOptions(options: TrainOptions, numClasses: number): Result<void> {
  if (!ARCHITECTURES.includes(options.arch)) {
    return fail(
      'bad-argument',
      `Expected --arch to be one of ${ARCHITECTURES.join(', ')}, got ${String(options.arch)}`,
    );
  }
  if (!Number.isInteger(options.width) || options.width < 1 || options.width > 64) {
    return fail(
      'bad-argument',
      `Expected --width to be an integer in [1, 64], got ${options.width}`,
    );
  }
  const classes = checkClasses(options.classes, numClasses, '--classes');
  if (!classes.ok) return classes;
  if (!Number.isInteger(options.epochs) || options.epochs < 1)
    return fail('bad-argument', `Expected --epochs to be an integer >= 1, got ${options.epochs}`);
  const batch = options.batchSize ?? 128;
  if (!Number.isInteger(batch) || batch < 2)
    return fail('bad-argument', `Expected --batch to be an integer >= 2, got ${batch}`);
  const lr = options.learningRate ?? defaultLearningRate(options.arch);
  if (!(lr > 0) || !Number.isFinite(lr))
    return fail('bad-argument', `Expected --lr to be a positive number, got ${lr}`);
  const decay = options.weightDecay ?? DEFAULT_WEIGHT_DECAY;
  if (!(decay >= 0) || !Number.isFinite(decay))
    return fail('bad-argument', `Expected --weight-decay to be a number >= 0, got ${decay}`);
  const eps = options.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1))
    return fail('bad-argument', `Expected --label-smoothing to be in [0, 1), got ${eps}`);
  return ok(undefined);
}

/** Logit index of each class of the label space (-1 when the head has no logit for it). */
function logitOfClass(classes: readonly number[], head: Head, numClasses: number): Int32Array {
  const index = new Int32Array(numClasses).fill(-1);
  classes.forEach((k, position) => (index[k] = head === 'all' ? k : position));
  return index;
}

/**
 * Writes the targets of one batch: `1 - eps` on each image's logit, plus `eps / columns` on
 * every one of the trained classes' logits `taskColumns`; other logits stay 0.
 */
export function fillTargets(
  out: Float32Array,
  logitOfImage: (i: number) => number,
  taskColumns: readonly number[],
  numLogits: number,
  eps: number,
): void {
  out.fill(0);
  const rows = out.length / numLogits;
  const share = eps / taskColumns.length;
  for (let i = 0; i < rows; i++) {
    if (share > 0) for (const c of taskColumns) out[i * numLogits + c] = share;
    const at = i * numLogits + logitOfImage(i);
    out[at] = out[at]! + 1 - eps;
  }
}

/** Index of the largest of `logits[row, columns[*]]`: the prediction among a task's classes. */
function argmaxAmong(
  logits: Float32Array,
  row: number,
  width: number,
  columns: readonly number[],
): number {
  let best = columns[0]!;
  for (const c of columns) if (logits[row * width + c]! > logits[row * width + best]!) best = c;
  return best;
}

/** Trains a zoo model on the images of `options.classes` in `train`. */
export async function trainModel(
  train: Dataset,
  options: TrainOptions,
): Promise<Result<TrainedModel>> {
  const checked = checkTrainOptions(options, train.numClasses);
  if (!checked.ok) return checked;
  const head = options.head ?? 'all';
  const batchSize = options.batchSize ?? 128;
  const data = selectClasses(train, options.classes);
  if (!data.ok) return data;
  const ds = data.value;
  const stepsPerEpoch = Math.floor(ds.count / batchSize);
  if (stepsPerEpoch < 1)
    return fail(
      'bad-argument',
      `Expected at least --batch ${batchSize} training images of classes ${options.classes.join(',')}, got ${ds.count}`,
    );

  // Statistics of the whole training set, not of the selected classes: models trained on
  // different classes of one dataset then share their preprocessing, so a merged model
  // can feed one input to both.
  const { mean, std } = channelStatistics(train);
  const classLabels =
    head === 'all' ? Array.from({ length: train.numClasses }, (_, k) => k) : [...options.classes];
  const zoo = buildZooModel({
    arch: options.arch,
    width: options.width,
    seed: options.seed,
    inputShape: [ds.channels, ds.height, ds.width],
    classLabels,
    preprocessing: { mean, std },
  });
  if (!zoo.ok) return zoo;
  const plan = planTraining(zoo.value, batchSize);
  if (!plan.ok) return plan;
  const block = options.blockedConvolutions === false ? undefined : await nchwcBlockSize();
  const step = buildStepGraph(plan.value, {
    momentum: options.momentum ?? 0.9,
    weightDecay: options.weightDecay ?? DEFAULT_WEIGHT_DECAY,
    decay: options.decay ?? 'all',
    ...(options.convWeightGrad ? { convWeightGrad: options.convWeightGrad } : {}),
    ...(block !== undefined ? { nchwcBlock: block } : {}),
  });
  if (!step.ok) return step;
  const names = step.value.names;
  const initialState = new Map<string, Tensor<'float32'>>();
  for (const [name, tensor] of plan.value.initializers) {
    initialState.set(name, tensor as Tensor<'float32'>);
    initialState.set(momentumName(name), float32Tensor(tensor.dims));
  }
  const session = await createStatefulSession(encodeModel(step.value.model), {
    threads: options.threads ?? 2,
    initialState,
    state: names.state,
    fetch: [names.loss, names.logits],
  });
  if (!session.ok) return session;

  const random = new Random(options.seed);
  const augmentation = options.augmentation ?? { padding: 2, flip: true };
  const numLogits = classLabels.length;
  const logitIndex = logitOfClass(options.classes, head, train.numClasses);
  const taskColumns = options.classes.map((k) => logitIndex[k]!);
  const input = float32Tensor(plan.value.inputShape);
  const targets = float32Tensor([batchSize, numLogits]);
  const learningRate = float32Tensor([], new Float32Array(1));
  const totalSteps = stepsPerEpoch * options.epochs;
  const schedule = options.schedule ?? 'linear';
  const warmup = warmupStepsOf(schedule, totalSteps);
  const history: Array<{ loss: number; accuracy: number }> = [];
  const started = performance.now();
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const order = random.permutation(ds.count);
      let lossSum = 0;
      let correct = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const indices = order.subarray(s * batchSize, (s + 1) * batchSize);
        fillAugmentedBatch(ds, indices, augmentation, mean, std, random, input.data);
        fillTargets(
          targets.data,
          (i) => logitIndex[ds.labels[indices[i]!]!]!,
          taskColumns,
          numLogits,
          options.labelSmoothing ?? 0,
        );
        const globalStep = epoch * stepsPerEpoch + s;
        learningRate.data[0] = learningRateAt(
          schedule,
          globalStep,
          totalSteps,
          options.learningRate ?? defaultLearningRate(options.arch),
          warmup,
        );
        const out = await session.value.step({
          [names.input]: input,
          [names.targets]: targets,
          [names.learningRate]: learningRate,
        });
        const loss = out[names.loss]!.data[0]!;
        if (!Number.isFinite(loss)) {
          return fail(
            'runtime-error',
            `Training diverged (loss ${loss}) at epoch ${epoch + 1}, step ${s + 1}; lower --lr.`,
          );
        }
        lossSum += loss;
        const logits = out[names.logits]!.data;
        for (let i = 0; i < batchSize; i++) {
          if (
            argmaxAmong(logits, i, numLogits, taskColumns) === logitIndex[ds.labels[indices[i]!]!]
          )
            correct++;
        }
        const seconds = (performance.now() - started) / 1000;
        const done = globalStep + 1;
        options.onProgress?.({
          phase: 'training',
          done,
          total: totalSteps,
          info: {
            epoch: epoch + 1,
            loss: lossSum / (s + 1),
            acc: correct / ((s + 1) * batchSize),
            'img/s': Math.round((done * batchSize) / seconds),
            left: `${Math.round(((totalSteps - done) * seconds) / done)}s`,
          },
        });
      }
      history.push({
        loss: lossSum / stepsPerEpoch,
        accuracy: correct / (stepsPerEpoch * batchSize),
      });
    }
    const seconds = (performance.now() - started) / 1000;
    const trained = session.value.state();
    const initializers = new Map(zoo.value.graph.initializers);
    for (const name of plan.value.initializers.keys()) {
      initializers.set(
        name,
        float32Tensor(initializers.get(name)!.dims, Float32Array.from(trained.get(name)!)),
      );
    }
    const model: Model = {
      ...zoo.value,
      metadata: {
        ...zoo.value.metadata,
        ...recipeMetadata(options),
      },
      graph: { ...zoo.value.graph, initializers },
    };
    return ok({
      model,
      summary: { epochs: history, seconds, imagesPerSecond: (totalSteps * batchSize) / seconds },
    });
  } finally {
    await session.value.release();
  }
}

/**
 * Task accuracy of a trained model: the share of `test`'s images of `classes` whose largest
 * logit among those classes' logits is the right one. `classLabels` is the class of each logit.
 */
export async function taskAccuracy(
  model: Model,
  test: Dataset,
  classes: readonly number[],
  classLabels: readonly number[],
  normalization: { mean: readonly number[]; std: readonly number[] },
  options: { threads?: number; batchSize?: number } = {},
): Promise<Result<number>> {
  const data = selectClasses(test, classes);
  if (!data.ok) return data;
  const columns = classes.map((k) => classLabels.indexOf(k));
  if (columns.some((c) => c < 0))
    return fail('bad-argument', `The model has no logit for some of classes ${classes.join(',')}.`);
  const session = await createSession(model, { threads: options.threads ?? 2 });
  if (!session.ok) return session;
  const batched = batches(data.value, {
    batchSize: options.batchSize ?? 256,
    normalization: { mean: [...normalization.mean], std: [...normalization.std] },
  });
  if (!batched.ok) return batched;
  const inputName = model.graph.inputs[0]!.name;
  let correct = 0;
  try {
    for (const batch of batched.value) {
      const input = float32Tensor(
        [batch.size, data.value.channels, data.value.height, data.value.width],
        batch.input,
      );
      const out = await session.value.run({ [inputName]: input });
      const logits = Object.values(out)[0]!;
      const width = logits.dims[1]!;
      for (let i = 0; i < batch.size; i++) {
        if (classLabels[argmaxAmong(logits.data, i, width, columns)] === batch.labels[i]) correct++;
      }
    }
  } finally {
    await session.value.release();
  }
  return ok(correct / data.value.count);
}
