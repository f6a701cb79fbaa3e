/** @file Shared CLI plumbing: the real streams, argument parsers, progress bars, and the options several commands declare. */
import { availableParallelism, freemem, totalmem } from 'node:os';
import { SingleBar, Presets } from 'cli-progress';
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  RECOMMENDED_MERGE,
  defaultMemoryLimit,
  HEAD_ORDER_RULES,
  HEAD_RULES,
  LOGIT_RULES,
} from '../index.js';
import type { ProgressListener } from '../progress.js';
import type { CliIo } from './command.js';
import { printable } from './printable.js';

/** The real process streams. */
export function processIo(): CliIo {
  // Lines stay lines; any other control character (a terminal escape in a name) is escaped.
  const lines = (text: string): string => {
    const body = text.split('\n').map(printable).join('\n');
    return body.endsWith('\n') ? body : `${body}\n`;
  };
  return {
    out: (text) => process.stdout.write(lines(text)),
    err: (text) => process.stderr.write(lines(text)),
    interactive: Boolean(process.stderr.isTTY),
  };
}

/** Commander parser for a float; `name` appears in the message. */
export function parseFloatOption(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (value.trim() === '' || !Number.isFinite(number)) {
      throw new InvalidArgumentError(`Expected ${name} to be a number, got '${value}'.`);
    }
    return number;
  };
}

/** Commander parser for a non-negative integer. */
export function parseIntOption(name: string, min = 0) {
  return (value: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < min) {
      throw new InvalidArgumentError(
        `Expected ${name} to be an integer >= ${min}, got '${value}'.`,
      );
    }
    return number;
  };
}

/**
 * Commander parser for `--threads`: an integer from 1 to the cores this process may use.
 * More intra-op threads than cores only adds contention: 100 threads made a 1 s merge take
 * 14 s, and 1000 made no progress in two minutes, so a larger value is refused, not clamped.
 */
export function parseThreadsOption(maxThreads = availableParallelism()) {
  return (value: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1 || number > maxThreads) {
      throw new InvalidArgumentError(
        `Expected --threads to be an integer from 1 to ${maxThreads} (the cores this machine has), got '${value}'.`,
      );
    }
    return number;
  };
}

/** Commander parser for comma-separated numbers (`--mean 0.5,0.5,0.5`). */
export function parseNumberList(name: string) {
  return (value: string): number[] => {
    const values = value.split(',').map((v) => Number(v.trim()));
    if (values.some((v) => !Number.isFinite(v)) || value.trim() === '') {
      throw new InvalidArgumentError(
        `Expected ${name} to be comma-separated numbers, got '${value}'.`,
      );
    }
    return values;
  };
}

/**
 * A progress listener drawing one bar per phase on stderr (a terminal), or printing a line
 * per phase change otherwise. Call `stop()` when the work ends.
 */
export function progressBar(io: CliIo): { listener: ProgressListener; stop(): void } {
  let bar: SingleBar | undefined;
  let phase = '';
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
  };
  const listener: ProgressListener = (event) => {
    const info = Object.entries(event.info ?? {})
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
      .join('  ');
    if (event.phase !== phase) {
      stop();
      phase = event.phase;
      if (!io.interactive) io.err(`${event.phase}...`);
      else {
        bar = new SingleBar(
          {
            format: `${event.phase.padEnd(12)} [{bar}] {value}/{total} eta {eta_formatted}  {info}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: false,
          },
          Presets.shades_classic,
        );
        bar.start(event.total, event.done, { info });
      }
    }
    bar?.setTotal(event.total);
    bar?.update(event.done, { info });
    if (!io.interactive && event.done === event.total && event.info) io.err(`  ${info}`);
  };
  return { listener, stop };
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3);
}

/** The data spec a command merges or trains on when `--data` is not given. */
export const TRAIN_DATA = 'fashion-mnist:train';

/** The data spec a command evaluates on when not told otherwise. */
export const TEST_DATA = 'fashion-mnist:test';

/** A data-spec option (`--data <spec>` unless `flags` says otherwise) with its default. */
export function dataOption(
  description: string,
  fallback = TRAIN_DATA,
  flags = '--data <spec>',
): Option {
  return new Option(flags, description).default(fallback);
}

/** `--tasks <sets>`: class sets separated by '/', one per model; resolveTasks reads it. */
export function tasksOption(description: string): Option {
  return new Option('--tasks <sets>', description);
}

/**
 * `--head <rule>`: how a full merge builds the classifier. class-aware (output class j from the
 * models trained on j) needs each model's classes (--tasks or the models' metadata); average is
 * the paper's.
 */
export function headOption(): Option {
  return new Option(
    '--head <rule>',
    "classifier of a full merge: class-aware (class j from the models trained on j; needs --tasks or the models' trained classes), average (every model's row, as in the paper), or auto (class-aware when the classes are known, else average)",
  )
    .choices(HEAD_RULES)
    .default(RECOMMENDED_MERGE.head);
}

/** `--reset-sources` and `--no-reset-sources`: the reference's BatchNorm reset of the sources. */
export function withResetSourcesOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--reset-sources',
        "re-estimate each source's BatchNorm statistics on the merge data before it is measured and scored, as the reference's scripts do (no effect without BatchNorm)",
      ).default(RECOMMENDED_MERGE.resetSources),
    )
    .addOption(new Option('--no-reset-sources', "keep the sources' own BatchNorm statistics"));
}

/**
 * The merge procedure's options, defaulting to RECOMMENDED_MERGE: `--head`, `--reset-sources` /
 * `--no-reset-sources`, `--logits` (merge, compare and experiment take all of them).
 */
export function withProcedureOptions(command: Command): Command {
  return withResetSourcesOptions(command.addOption(headOption())).addOption(logitsOption());
}

/** `--heads <rule>`: a transformer's attention heads matched to heads, or kept in place. */
export function headsOption(): Option {
  return new Option(
    '--heads <rule>',
    "attention heads (transformers): match (reorder each model's heads to face model 0's most similar before matching within heads) or in-place (head i with head i)",
  )
    .choices(HEAD_ORDER_RULES)
    .default('match');
}

/** `--logits <rule>`: a merge's logits as merged, or standardised on the merge data. */
export function logitsOption(): Option {
  return new Option(
    '--logits <rule>',
    "merged logits: standardize (each class to mean 0, std 1 on the merge data, folded into the output Gemm or appended after the output; every head of a partial zip) or raw (as merged, the paper's)",
  )
    .choices(LOGIT_RULES)
    .default(RECOMMENDED_MERGE.logits);
}

/** `--samples <n>`: how many images a draw takes (at least 1). */
export function samplesOption(description: string, fallback = 5000): Option {
  return intOption('--samples <n>', description, fallback, 1);
}

/** `--seed <n>`: the seed of a random draw (a non-negative integer). */
export function seedOption(description: string, fallback = 0): Option {
  return intOption('--seed <n>', description, fallback);
}

/** Adds `--mean` and `--std` (input preprocessing after /255) to a command that feeds data. */
export function withPreprocessingOptions(command: Command): Command {
  return command
    .option(
      '--mean <values>',
      'input mean after /255 (one value or one per channel)',
      parseNumberList('--mean'),
    )
    .option(
      '--std <values>',
      'input std after /255 (one value or one per channel)',
      parseNumberList('--std'),
    );
}

/** The default `--threads`: 2, or 1 on a single-core machine (never more than the cores). */
export const DEFAULT_THREADS = Math.min(2, availableParallelism());

/** `--threads <n>`: onnxruntime's intra-op threads, from 1 to the cores (see parseThreadsOption). */
export function threadsOption(
  description = 'onnxruntime threads (at most the number of cores)',
): Option {
  return new Option('--threads <n>', description)
    .default(DEFAULT_THREADS)
    .argParser(parseThreadsOption());
}

/** The flags {@link withRunOptions} adds. */
export interface RunFlags {
  readonly threads: number;
}

/** The flags {@link withRunOptions} adds when given a batch size. */
export interface BatchRunFlags extends RunFlags {
  readonly batch: number;
}

/** Adds `--threads` (onnxruntime intra-op threads), and `--batch` when a default is given. */
export function withRunOptions(command: Command, batch?: number): Command {
  if (batch !== undefined) {
    command.addOption(intOption('--batch <n>', 'batch size', batch, 1));
  }
  return command.addOption(threadsOption());
}

/** An integer option (`flags` like '--samples <n>') with a default, checked to be >= `min`. */
export function intOption(flags: string, description: string, fallback: number, min = 0): Option {
  const name = flags.split(' ')[0]!;
  return new Option(flags, description).default(fallback).argParser(parseIntOption(name, min));
}

/**
 * The default `--max-memory` in GiB (one decimal, rounded down) for this machine as it is now:
 * see {@link defaultMemoryLimit}. `process.constrainedMemory()` is the cgroup limit (2^64 when
 * there is none); `freemem()` is MemAvailable on Linux.
 */
export function defaultMaxMemoryGiB(): number {
  const constrained = process.constrainedMemory?.();
  const limit = defaultMemoryLimit({
    total: totalmem(),
    available: freemem(),
    ...(constrained !== undefined && constrained < totalmem() ? { constrained } : {}),
  });
  return Math.floor((limit / 2 ** 30) * 10) / 10;
}

/** `--max-memory <GiB>`: the memory budget of a merge, defaulting to {@link defaultMaxMemoryGiB}. */
export function maxMemoryOption(): Option {
  return new Option(
    '--max-memory <GiB>',
    'refuse merges estimated to need more memory than this (the whole merge; 80% of the memory available now by default)',
  )
    .default(defaultMaxMemoryGiB())
    .argParser(parseFloatOption('--max-memory'));
}

/** The flags {@link withZipitOptions} adds. */
export interface ZipitFlags {
  readonly alpha: number;
  readonly beta: number;
}

/** Adds ZipIt!'s `--alpha` and `--beta`, defaulting to the reference's values. */
export function withZipitOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--alpha <x>', 'ZipIt! repeated-matching factor in [0, 1]')
        .default(RECOMMENDED_MERGE.match.alpha)
        .argParser(parseFloatOption('--alpha')),
    )
    .addOption(
      new Option('--beta <x>', 'ZipIt! same-model budget factor in [0, 1]')
        .default(RECOMMENDED_MERGE.match.beta)
        .argParser(parseFloatOption('--beta')),
    );
}
