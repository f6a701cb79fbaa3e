/** @file `zipit merge --alpha auto --beta auto`: the option values that ask for a label-free choice, and the printed grid. */
import { Option, type Command } from 'commander';
import { fail, ok, type Result } from '../errors.js';
import {
  DEFAULT_ALPHA_GRID,
  DEFAULT_BETA_GRID,
  RECOMMENDED_MERGE,
  DEFAULT_TUNE_HOLDOUT,
  parseMatchOptions,
  type Tuning,
} from '../index.js';
import { parseFloatOption } from './common.js';

/** A fixed alpha or beta, or the values to choose it from. */
export type Tunable = number | readonly number[];

/** The flags {@link withTunableZipitOptions} adds (alpha and beta as typed, or their defaults). */
export interface TunableZipitFlags {
  readonly alpha: number | string;
  readonly beta: number | string;
  readonly tuneHoldout: number;
}

/**
 * Adds `--alpha` and `--beta` (a number, 'auto', or a comma-separated list to choose from) and
 * `--tune-holdout`. The values are read in the command's action by {@link parseTunable}, so a
 * bad one is a one-line error with exit code 1 like every other input error.
 */
export function withTunableZipitOptions(command: Command): Command {
  const grid = (values: readonly number[]): string => values.join(',');
  return command
    .addOption(
      new Option(
        '--alpha <x>',
        `ZipIt! repeated-matching factor in [0, 1]; 'auto' chooses it without labels from ${grid(DEFAULT_ALPHA_GRID)} (or from a comma-separated list)`,
      ).default(RECOMMENDED_MERGE.match.alpha),
    )
    .addOption(
      new Option(
        '--beta <x>',
        `ZipIt! same-model budget factor in [0, 1]; 'auto' chooses it without labels from ${grid(DEFAULT_BETA_GRID)} (or from a comma-separated list)`,
      ).default(RECOMMENDED_MERGE.match.beta),
    )
    .addOption(
      new Option(
        '--tune-holdout <fraction>',
        'with auto: the share of the merge images held out to score each candidate merge (0 scores on the images it was fitted to)',
      )
        .default(DEFAULT_TUNE_HOLDOUT)
        .argParser(parseFloatOption('--tune-holdout')),
    );
}

/**
 * `--alpha` or `--beta` as typed: a number (fixed), 'auto' (`grid`), or a comma-separated list
 * of two or more values to choose from; every value in [0, 1].
 */
export function parseTunable(
  name: 'alpha' | 'beta',
  value: number | string,
  grid: readonly number[],
): Result<Tunable> {
  if (typeof value === 'number') return checked(name, [value], value);
  const text = value.trim();
  if (text === 'auto') return ok([...grid]);
  const parts = text.split(',').map((part) => part.trim());
  const numbers = parts.map((part) => (part === '' ? Number.NaN : Number(part)));
  if (numbers.some((n) => !Number.isFinite(n)))
    return fail(
      'bad-argument',
      `Expected --${name} to be a number in [0, 1], 'auto', or a comma-separated list of numbers, got '${value}'.`,
    );
  if (numbers.length === 1) return checked(name, numbers, numbers[0]!);
  if (new Set(numbers).size !== numbers.length)
    return fail('bad-argument', `Expected each --${name} value once, got '${value}'.`);
  return checked(name, numbers, numbers);
}

/** `result` when every value is a valid alpha (or beta), else the range message. */
function checked(name: 'alpha' | 'beta', values: number[], result: Tunable): Result<Tunable> {
  for (const value of values) {
    const parsed = parseMatchOptions({ [name]: value });
    if (!parsed.ok) return parsed;
  }
  return ok(result);
}

const RULE_TEXT: Record<Tuning['rule'], string> = {
  joint: "joint agreement with the source models' ensemble",
  routed: 'agreement with the source the ensemble routes each image to',
  all: 'agreement with every source on its own classes',
  confidence: 'confidence-weighted agreement with every source',
  soft: "the merge's probability of each source's prediction",
  margin: "joint agreement with the source models' ensemble, weighted by its routing margin",
};

/** The tuning as text: what was scored, the grid of scores (alpha rows, beta columns), the choice. */
export function formatTuning(tuning: Tuning): string {
  const pct = (x: number): string => (100 * x).toFixed(1);
  const header = ['alpha \\ beta', ...tuning.betas.map(String)];
  const rows = tuning.alphas.map((alpha) => [
    String(alpha),
    ...tuning.betas.map((beta) => {
      const point = tuning.points.find((p) => p.alpha === alpha && p.beta === beta);
      const mark = alpha === tuning.chosen.alpha && beta === tuning.chosen.beta ? '*' : ' ';
      return point === undefined ? '-' : `${mark}${pct(point.agreement[tuning.rule])}`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const where =
    tuning.fitted === tuning.scored
      ? `on the ${tuning.scored} merge images the merges were fitted to`
      : `on ${tuning.scored} held-out merge images (merges fitted to the other ${tuning.fitted})`;
  return [
    `label-free alpha/beta: ${RULE_TEXT[tuning.rule]} (%), ${where}`,
    line(header),
    ...rows.map(line),
    `chosen: alpha ${tuning.chosen.alpha}, beta ${tuning.chosen.beta} (${pct(tuning.chosen.score)}%; ${tuning.seconds.grid.toFixed(1)} s for ${tuning.points.length} merges)`,
  ].join('\n');
}
