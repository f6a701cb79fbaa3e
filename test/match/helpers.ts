/** @file Shared helpers for the matcher tests: a seeded RNG, random correlations, the golden fixture. */
import { readFileSync } from 'node:fs';
import { mulberry32 } from '../../src/data/random.js';
import { correlationFromCovariance } from '../../src/stats/covariance.js';

/** A seeded uniform [0, 1) generator, so failures reproduce. */
export const seededRandom = mulberry32;

/**
 * The correlation of `size` random features over `samples` draws, [size, size] row-major. With
 * `levels`, off-diagonal values are rounded to multiples of 1/levels, which makes exact ties
 * common (the tie-breaking tests need them).
 */
export function randomCorrelation(
  random: () => number,
  size: number,
  options: { samples?: number; levels?: number } = {},
): Float64Array {
  const samples = options.samples ?? 3 * size + 4;
  const features = new Float64Array(size * samples); // [size, samples]
  const shared = new Float64Array(samples).map(() => random() - 0.5);
  for (let i = 0; i < size; i++) {
    const loading = random() * 2 - 1;
    for (let p = 0; p < samples; p++) {
      features[i * samples + p] = loading * shared[p]! + (random() - 0.5);
    }
  }
  const covariance = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = i; j < size; j++) {
      let sum = 0;
      for (let p = 0; p < samples; p++)
        sum += features[i * samples + p]! * features[j * samples + p]!;
      covariance[i * size + j] = sum / samples;
      covariance[j * size + i] = sum / samples;
    }
  }
  const correlation = correlationFromCovariance(covariance, size);
  const levels = options.levels;
  if (levels !== undefined) {
    for (let i = 0; i < correlation.length; i++) {
      correlation[i] = Math.round(correlation[i]! * levels) / levels;
    }
  }
  return correlation;
}

/** One case of the reference's golden outputs (test/fixtures/golden-matching). */
export interface GoldenCase {
  n: number;
  K: number;
  seed: number;
  covariance: number[][];
  zipit: { alpha: number; beta: number; budget_per_model: number; groups: number[][] }[];
  permute: { groups: number[][] };
}

/** Loads the golden cases copied from shared/fixtures/golden-matching. */
export function loadGoldenCases(): GoldenCase[] {
  const url = new URL('../fixtures/golden-matching/golden-matching.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { cases: GoldenCase[] }).cases;
}

/** Why `groups` fail to partition [0, total) into ascending groups, or undefined if they do. */
export function partitionProblem(groups: number[][], total: number): string | undefined {
  const seen = new Uint8Array(total);
  for (const group of groups) {
    if (group.length === 0) return 'empty group';
    for (let a = 0; a < group.length; a++) {
      const f = group[a]!;
      if (!Number.isInteger(f) || f < 0 || f >= total) return `feature ${f} out of range`;
      if (seen[f] === 1) return `feature ${f} in two groups`;
      if (a > 0 && group[a - 1]! >= f) return `group ${JSON.stringify(group)} not ascending`;
      seen[f] = 1;
    }
  }
  const missing = seen.indexOf(0);
  return missing >= 0 ? `feature ${missing} in no group` : undefined;
}
