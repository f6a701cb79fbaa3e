/** @file Shared CLI plumbing: the command result contract, argument parsers, progress bars. */
import { availableParallelism, freemem, totalmem } from 'node:os';
import { SingleBar, Presets } from 'cli-progress';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Result } from '../errors.js';
import { DEFAULT_MATCH_OPTIONS } from '../match/types.js';
import { defaultMemoryLimit } from '../merge/memory-estimate.js';
import type { ProgressListener } from '../progress.js';
import { printable } from './printable.js';

/** Where a command writes: results to `out` (stdout), progress and notes to `err` (stderr). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** True when stderr is a terminal (draw bars) rather than a log (print phase lines). */
  readonly interactive: boolean;
}

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

/** A command's body: resolves to ok, or a Failure the CLI prints as one line (exit 1). */
export type CommandBody = () => Promise<Result<void>>;

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

/** Adds `--threads` (onnxruntime intra-op threads), and `--batch` when a default is given. */
export function withRunOptions(command: Command, batch?: number): Command {
  if (batch !== undefined) {
    command.addOption(intOption('--batch <n>', 'batch size', batch, 1));
  }
  return command.addOption(
    new Option('--threads <n>', 'onnxruntime threads (at most the number of cores)')
      .default(DEFAULT_THREADS)
      .argParser(parseThreadsOption()),
  );
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

/** Adds ZipIt!'s `--alpha` and `--beta`, defaulting to the reference's values. */
export function withZipitOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--alpha <x>', 'ZipIt! repeated-matching factor in [0, 1]')
        .default(DEFAULT_MATCH_OPTIONS.alpha)
        .argParser(parseFloatOption('--alpha')),
    )
    .addOption(
      new Option('--beta <x>', 'ZipIt! same-model budget factor in [0, 1]')
        .default(DEFAULT_MATCH_OPTIONS.beta)
        .argParser(parseFloatOption('--beta')),
    );
}
