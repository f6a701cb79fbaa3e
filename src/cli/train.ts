/** @file The `train` and `train-pair` commands: train zoo models on a dataset's classes and write them as ONNX. */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { fail, ok, type Result } from '../errors.js';
import { writeFailure } from '../files/write-errors.js';
import {
  checkOutputPath,
  checkTrainOptions,
  DEFAULT_WEIGHT_DECAY,
  defaultLearningRate,
  parseTasks,
  storedClassLabels,
  storedPreprocessing,
  taskAccuracy,
  trainModel,
  writeFileAtomic,
  writeModelFile,
  type Architecture,
  type Dataset,
  type Head,
  type Schedule,
  type TrainOptions,
} from '../index.js';
import type { CliIo, RegisterCommand } from './command.js';
import {
  dataOption,
  parseFloatOption,
  parseIntOption,
  progressBar,
  threadsOption,
  type RunFlags,
} from './common.js';
import { checkNotInputs, commandInputs, loadSplits } from './inputs.js';
import { printable } from './printable.js';

interface SharedFlags extends RunFlags {
  arch: string;
  width: number;
  epochs: number;
  data: string;
  test?: string;
  batch: number;
  lr?: number;
  schedule: string;
  decay: string;
  weightDecay: number;
  labelSmoothing: number;
  head: string;
  out: string;
}

/** Fails early if `dir` is a file, or neither it nor (when it does not exist yet) its parent is writable. */
function checkOutputFolder(dir: string): Result<void> {
  try {
    const stats = statSync(dir, { throwIfNoEntry: false });
    if (stats !== undefined && !stats.isDirectory())
      return fail('unwritable-output', `Expected --out to be a folder, got the file ${dir}.`);
    accessSync(stats !== undefined ? dir : dirname(resolve(dir)), constants.W_OK);
  } catch (error: unknown) {
    // A file on the path, a symlink loop, a name too long: the user's mistake, said plainly.
    return writeFailure(dir, error);
  }
  return ok(undefined);
}

function parseClassList(text: string): Result<number[]> {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => !/^\d+$/.test(s)))
    return fail(
      'bad-argument',
      `Expected --classes to be comma-separated class indices, got '${text}'`,
    );
  return ok(items.map(Number));
}

function parseHead(text: string): Result<Head> {
  return text === 'all' || text === 'own'
    ? ok(text)
    : fail('bad-argument', `Expected --head to be all or own, got ${text}`);
}

/** The test split matching a training spec (`fashion-mnist:train` -> `fashion-mnist:test`). */
function testSpecOf(flags: SharedFlags): string {
  return flags.test ?? flags.data.replace(/:train$/, ':test');
}

/** The data files a training run reads (both specs'): no output may replace one. */
function trainInputs(flags: SharedFlags): string[] {
  return commandInputs([], [flags.data, testSpecOf(flags)]);
}

function baseOptions(
  flags: SharedFlags,
  head: Head,
  classes: number[],
  seed: number,
): TrainOptions {
  return {
    arch: flags.arch as Architecture,
    width: flags.width,
    seed,
    classes,
    head,
    epochs: flags.epochs,
    batchSize: flags.batch,
    ...(flags.lr !== undefined ? { learningRate: flags.lr } : {}),
    schedule: flags.schedule as Schedule,
    decay: flags.decay as 'all' | 'weights',
    weightDecay: flags.weightDecay,
    labelSmoothing: flags.labelSmoothing,
    threads: flags.threads,
  };
}

/** Trains one model and scores it on the test split; returns the model and its task accuracy. */
async function trainAndScore(
  io: CliIo,
  options: TrainOptions,
  train: Dataset,
  test: Dataset,
  label: string,
) {
  const bar = progressBar(io);
  const trained = await trainModel(train, { ...options, onProgress: bar.listener });
  bar.stop();
  if (!trained.ok) return trained;
  const { model, summary } = trained.value;
  const labels = storedClassLabels(model)![0]!;
  const accuracy = await taskAccuracy(
    model,
    test,
    options.classes,
    labels,
    storedPreprocessing(model)!,
    { threads: options.threads ?? 2 },
  );
  if (!accuracy.ok) return accuracy;
  const last = summary.epochs[summary.epochs.length - 1]!;
  io.out(
    `${label}: ${options.arch} x${options.width} classes ${options.classes.join(',')} seed ${options.seed}: ` +
      `train loss ${last.loss.toFixed(4)}, train acc ${(100 * last.accuracy).toFixed(2)}%, ` +
      `test task accuracy ${(100 * accuracy.value).toFixed(2)}% (${summary.seconds.toFixed(1)} s, ${summary.imagesPerSecond.toFixed(0)} img/s)`,
  );
  return ok({ model, accuracy: accuracy.value, summary });
}

function addShared(command: Command): Command {
  return command
    .requiredOption('--arch <arch>', 'mlp, vgg, resnet20 or vit')
    .option('--width <n>', 'width multiplier', parseIntOption('--width', 1), 1)
    .option('--epochs <n>', 'epochs', parseIntOption('--epochs', 1), 6)
    .addOption(dataOption('training data spec'))
    .option('--test <spec>', 'test data spec (default: the :test split of --data)')
    .option('--batch <n>', 'batch size', parseIntOption('--batch', 2), 128)
    .option(
      '--lr <rate>',
      'peak learning rate (default 0.2 for resnet20 and vit, 0.1 for mlp and vgg)',
      parseFloatOption('--lr'),
    )
    .addOption(
      new Option(
        '--schedule <kind>',
        "'linear' (15% linear warm-up, then linear decay to 0) or 'cosine' (3% warm-up, then cosine)",
      )
        .choices(['linear', 'cosine'])
        .default('linear'),
    )
    .addOption(
      new Option(
        '--decay <which>',
        "weight decay on 'all' parameters (BN and biases too, as PyTorch's SGD) or on conv/linear 'weights' only",
      )
        .choices(['all', 'weights'])
        .default('all'),
    )
    .option(
      '--weight-decay <rate>',
      "SGD weight decay (PyTorch's weight_decay)",
      parseFloatOption('--weight-decay'),
      DEFAULT_WEIGHT_DECAY,
    )
    .option(
      '--label-smoothing <eps>',
      "targets keep 1 - eps on the label and spread eps over the model's own classes",
      parseFloatOption('--label-smoothing'),
      0,
    )
    .addOption(threadsOption('onnxruntime threads'))
    .option(
      '--head <kind>',
      "'all' (a logit per class of the dataset) or 'own' (the trained classes only)",
      'all',
    )
    .requiredOption('--out <path>', 'output');
}

/** Registers `train` and `train-pair`. */
export const registerTrain: RegisterCommand = (program, io, run) => {
  addShared(
    program
      .command('train')
      .description('Train a zoo model on some classes of a dataset; writes inference ONNX.'),
  )
    .requiredOption('--classes <list>', 'comma-separated classes to learn, e.g. 0,2,4,6,8')
    .option(
      '--seed <n>',
      'seed of initialisation, order and augmentation',
      parseIntOption('--seed'),
      1,
    )
    .action((flags: SharedFlags & { classes: string; seed: number }) =>
      run(async () => {
        const head = parseHead(flags.head);
        if (!head.ok) return head;
        const classes = parseClassList(flags.classes);
        if (!classes.ok) return classes;
        const options = baseOptions(flags, head.value, classes.value, flags.seed);
        // Fail on flags before spending seconds on loading data; 10 is the label space of every
        // dataset spec we load, and trainModel checks again against the loaded one.
        const checked = checkTrainOptions(options, 10);
        if (!checked.ok) return checked;
        const inputFiles = trainInputs(flags);
        const probe = checkOutputPath(flags.out, inputFiles);
        if (!probe.ok) return probe;
        const data = loadSplits(flags.data, testSpecOf(flags));
        if (!data.ok) return data;
        const { train, test } = data.value;
        const result = await trainAndScore(io, options, train, test, 'model');
        if (!result.ok) return result;
        const written = writeModelFile(flags.out, result.value.model, inputFiles);
        if (!written.ok) return written;
        io.out(`wrote ${printable(flags.out)}`);
        return ok(undefined);
      }),
    );

  addShared(
    program
      .command('train-pair')
      .description(
        'Train models A and B on two disjoint class sets; writes a.onnx, b.onnx and pair.json.',
      ),
  )
    .requiredOption('--split <tasks>', "two class sets, e.g. '0,2,4,6,8/1,3,5,7,9'")
    .option('--seeds <a,b>', 'seeds of A and B', '1,2')
    .action((flags: SharedFlags & { split: string; seeds: string }) =>
      run(async () => {
        const head = parseHead(flags.head);
        if (!head.ok) return head;
        const tasks = parseTasks(flags.split, 10);
        if (!tasks.ok) return tasks;
        if (tasks.value.length !== 2)
          return fail(
            'bad-argument',
            `Expected --split to have two class sets separated by '/', got ${tasks.value.length}`,
          );
        const seeds = flags.seeds.split(',').map((s) => s.trim());
        if (seeds.length !== 2 || seeds.some((s) => !/^\d+$/.test(s)))
          return fail(
            'bad-argument',
            `Expected --seeds to be two integers like 1,2, got '${flags.seeds}'`,
          );
        const options = tasks.value.map((classes, i) =>
          baseOptions(flags, head.value, classes, Number(seeds[i])),
        );
        for (const o of options) {
          const checked = checkTrainOptions(o, 10);
          if (!checked.ok) return checked;
        }
        const folder = checkOutputFolder(flags.out);
        if (!folder.ok) return folder;
        const inputFiles = trainInputs(flags);
        const outputs = ['a.onnx', 'b.onnx', 'pair.json'].map((name) => join(flags.out, name));
        const safe = checkNotInputs(outputs, inputFiles);
        if (!safe.ok) return safe;
        const data = loadSplits(flags.data, testSpecOf(flags));
        if (!data.ok) return data;
        const { train, test } = data.value;
        const results = [];
        for (const [i, o] of options.entries()) {
          const result = await trainAndScore(io, o, train, test, i === 0 ? 'A' : 'B');
          if (!result.ok) return result;
          results.push(result.value);
        }
        try {
          mkdirSync(flags.out, { recursive: true });
        } catch (error: unknown) {
          return writeFailure(flags.out, error);
        }
        // pair.json last: its presence means both models were written.
        for (const [i, r] of results.entries()) {
          const written = writeModelFile(outputs[i]!, r.model, inputFiles);
          if (!written.ok) return written;
        }
        const record = {
          arch: flags.arch,
          width: flags.width,
          split: tasks.value,
          seeds: options.map((o) => o.seed),
          epochs: flags.epochs,
          lr: flags.lr ?? defaultLearningRate(flags.arch as Architecture),
          schedule: flags.schedule,
          decay: flags.decay,
          weightDecay: flags.weightDecay,
          labelSmoothing: flags.labelSmoothing,
          head: head.value,
          data: flags.data,
          taskAccuracy: results.map((r) => r.accuracy),
          trainSeconds: results.map((r) => Number(r.summary.seconds.toFixed(1))),
        };
        const written = writeFileAtomic(
          outputs[2]!,
          `${JSON.stringify(record, null, 2)}\n`,
          inputFiles,
        );
        if (!written.ok) return written;
        io.out(
          `wrote ${printable(join(flags.out, 'a.onnx'))}, ${printable(join(flags.out, 'b.onnx'))}, ${printable(join(flags.out, 'pair.json'))}`,
        );
        return ok(undefined);
      }),
    );
};
