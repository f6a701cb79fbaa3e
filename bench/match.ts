/** @file Benchmark of the matchers (ZipIt! greedy zip, Permute) on K = 2 random correlations of growing width. */
import { pathToFileURL } from 'node:url';
import { mulberry32 } from '../src/data/random.js';
import { permuteMatch } from '../src/match/permute.js';
import { DEFAULT_MATCH_OPTIONS, type Matcher } from '../src/match/types.js';
import { zipMatch } from '../src/match/zip.js';
import { correlationFromCovariance } from '../src/stats/covariance.js';

/** Feature counts Kn to time, with K = 2 models of Kn / 2 features each. */
const SIZES = [512, 2048, 4096];
const NUM_MODELS = 2;
const SHARED_FACTORS = 16; // latent factors both models see (what makes features matchable)
const OWN_FACTORS = 16; // latent factors private to each model (what its task adds)

/**
 * The correlation of Kn features f = L z + noise whose latent z has SHARED_FACTORS factors
 * common to all models and OWN_FACTORS private to each: C = L L^T + D, [Kn, Kn]. Like real
 * activations, features of different models correlate through the shared factors, and
 * features of one model also through its private ones.
 */
function lowRankCorrelation(total: number, seed: number): Float64Array {
  const random = mulberry32(seed);
  const gaussian = (): number => {
    // Box-Muller; 1 - u keeps the logarithm finite.
    const u = random();
    const v = random();
    return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
  };
  const width = total / NUM_MODELS;
  const factors = SHARED_FACTORS + NUM_MODELS * OWN_FACTORS;
  const loadings = new Float64Array(total * factors); // [Kn, factors], zero on other models' own factors
  for (let f = 0; f < total; f++) {
    const model = Math.floor(f / width);
    for (let z = 0; z < SHARED_FACTORS; z++) loadings[f * factors + z] = gaussian();
    for (let z = 0; z < OWN_FACTORS; z++) {
      loadings[f * factors + SHARED_FACTORS + model * OWN_FACTORS + z] = gaussian();
    }
  }
  const covariance = new Float64Array(total * total);
  for (let i = 0; i < total; i++) {
    for (let j = i; j < total; j++) {
      let sum = 0;
      for (let z = 0; z < factors; z++)
        sum += loadings[i * factors + z]! * loadings[j * factors + z]!;
      if (i === j) sum += 4 + 8 * random(); // per-feature noise variance
      covariance[i * total + j] = sum;
      covariance[j * total + i] = sum;
    }
  }
  return correlationFromCovariance(covariance, total);
}

/** Wall-clock and CPU seconds of one run (CPU time is the fairer number on a busy machine). */
interface Timing {
  seconds: number;
  cpuSeconds: number;
}

function timeMatcher(matcher: Matcher, correlation: Float64Array, width: number): Timing {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const result = matcher(correlation, NUM_MODELS, width, DEFAULT_MATCH_OPTIONS);
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  if (!result.ok) throw new Error(`matcher failed: ${result.message}`);
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/**
 * Times ZipIt! (alpha 0.3, beta 0.125, m = n) and Permute at Kn = 512, 2048, 4096 (K = 2),
 * one run each after a warm-up at Kn = 512, and returns the seconds as JSON-able data.
 */
export async function benchMatch(): Promise<object> {
  const warmUp = lowRankCorrelation(SIZES[0]!, 1);
  timeMatcher(zipMatch, warmUp, SIZES[0]! / NUM_MODELS);
  timeMatcher(permuteMatch, warmUp, SIZES[0]! / NUM_MODELS);
  const results: { features: number; width: number; zipit: Timing; permute: Timing }[] = [];
  for (const total of SIZES) {
    const correlation = lowRankCorrelation(total, total);
    const width = total / NUM_MODELS;
    results.push({
      features: total,
      width,
      zipit: timeMatcher(zipMatch, correlation, width),
      permute: timeMatcher(permuteMatch, correlation, width),
    });
    await new Promise((resolve) => setImmediate(resolve)); // let the event loop breathe between sizes
  }
  return {
    benchmark: 'match',
    numModels: NUM_MODELS,
    options: { alpha: DEFAULT_MATCH_OPTIONS.alpha, beta: DEFAULT_MATCH_OPTIONS.beta },
    data: `seeded low-rank correlation: ${SHARED_FACTORS} shared + ${OWN_FACTORS} own factors per model`,
    node: process.version,
    results,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchMatch(), null, 2));
}
