/** @file The matchers by method name, and the validation of user-supplied matching options. */
import { fail, ok, type Result } from '../errors.js';
import { weightAverageMatch } from './identity.js';
import { permuteMatch } from './permute.js';
import {
  DEFAULT_MATCH_OPTIONS,
  unitIntervalProblem,
  type Matcher,
  type MatchOptions,
} from './types.js';
import { zipMatch } from './zip.js';

export { solveAssignment } from './assignment.js';
export { weightAverageMatch } from './identity.js';
export { permuteMatch } from './permute.js';
export {
  checkMatchArguments,
  DEFAULT_MATCH_OPTIONS,
  type Matcher,
  type Matching,
  type MatchOptions,
  type MatchSizes,
  unitIntervalProblem,
} from './types.js';
export { sameModelBudget, zipMatch } from './zip.js';

/** The methods that match on the features' correlation: each is a {@link Matcher} in {@link matchers}. */
export const CORRELATION_METHODS = ['zipit', 'permute', 'wavg'] as const;

/** A method matching on a correlation matrix. */
export type CorrelationMethod = (typeof CORRELATION_METHODS)[number];

/**
 * The method names a user can choose, in the order they are listed in messages: the correlation
 * methods, 'weights' (Git Re-Basin's weight matching), which needs the graph and the weights
 * rather than a correlation, so it lives in merge/weight-matching.ts and has no {@link Matcher},
 * and 'cca' (CCA merge), which makes dense maps from the covariance rather than groups
 * (merge/cca.ts).
 */
export const MATCH_METHODS = [...CORRELATION_METHODS, 'weights', 'cca'] as const;

/**
 * A matching method: ZipIt!'s greedy zip, the Permute baseline, plain weight averaging, weight
 * matching, or CCA merge.
 */
export type MatchMethod = (typeof MATCH_METHODS)[number];

/** Every correlation matcher by method name; all follow the one {@link Matcher} contract. */
export const matchers = {
  zipit: zipMatch,
  permute: permuteMatch,
  wavg: weightAverageMatch,
} as const satisfies Record<CorrelationMethod, Matcher>;

/** Matching options as a user gives them (CLI strings or numbers); absent ones take defaults. */
export interface RawMatchOptions {
  method?: string;
  alpha?: number | string;
  beta?: number | string;
  mergedWidth?: number | string;
}

/** Validated matching options: the method, and the options to pass to its matcher. */
export interface ParsedMatchOptions {
  method: MatchMethod;
  options: MatchOptions;
}

/**
 * Validates user-supplied matching options: the method must be one of {@link MATCH_METHODS}
 * (default 'zipit'), alpha and beta numbers in [0, 1] (defaults {@link DEFAULT_MATCH_OPTIONS}),
 * and the merged width, if given, a positive integer (its upper bound depends on the layer and
 * is checked by the matcher).
 */
export function parseMatchOptions(raw: RawMatchOptions): Result<ParsedMatchOptions> {
  const method = raw.method ?? 'zipit';
  if (!isMatchMethod(method)) {
    const names = MATCH_METHODS.map((name) => `'${name}'`);
    return fail(
      'bad-argument',
      `Expected --method to be ${names.slice(0, -1).join(', ')} or ${names.at(-1)!}, got '${method}'`,
    );
  }
  const alpha = toNumber(raw.alpha, DEFAULT_MATCH_OPTIONS.alpha);
  const beta = toNumber(raw.beta, DEFAULT_MATCH_OPTIONS.beta);
  const problem =
    unitIntervalProblem('alpha', alpha, raw.alpha) ?? unitIntervalProblem('beta', beta, raw.beta);
  if (problem !== undefined) return fail('bad-argument', problem);
  const options: MatchOptions = { alpha, beta };
  if (raw.mergedWidth !== undefined) {
    const mergedWidth = toNumber(raw.mergedWidth, Number.NaN);
    if (!Number.isInteger(mergedWidth) || mergedWidth < 1) {
      return fail(
        'bad-argument',
        `Expected --merged-width to be a positive integer, got ${raw.mergedWidth}`,
      );
    }
    options.mergedWidth = mergedWidth;
  }
  return ok({ method, options });
}

function isMatchMethod(name: string): name is MatchMethod {
  return (MATCH_METHODS as readonly string[]).includes(name);
}

/** A blank or non-numeric string becomes NaN, which every range check rejects. */
function toNumber(value: number | string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number') return value;
  return value.trim() === '' ? Number.NaN : Number(value);
}
