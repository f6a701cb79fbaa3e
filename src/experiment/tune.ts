/**
 * @file Label-free choice of ZipIt!'s alpha and beta: merge at every point of a grid and keep the
 * merge that best agrees with the source models' own predictions on held-out merge images.
 *
 * The expensive statistics pass runs once (on the images the merges fit to); every grid point
 * only matches, assembles the weights and resets the statistics, then the merge is scored
 * against the sources on the held-out images, which neither its statistics nor its BatchNorm
 * reset saw. The chosen point is then merged on all the merge data (the two statistics shards
 * summed), so the written model is the one `--alpha <chosen> --beta <chosen>` gives.
 *
 * It lives in experiment/, not merge/, because scoring runs models through eval/ (merge/ may not
 * import it; docs/ARCHITECTURE.md).
 */
import { fail, ok, type Result } from '../errors.js';
import { subset, type Dataset, type Normalization } from '../data/dataset.js';
import { modelScores } from '../eval/evaluate.js';
import { scoreTasks, type ScoreSource } from '../eval/metrics.js';
import { parseMatchOptions } from '../match/index.js';
import {
  collectMergeStatistics,
  mergeModels,
  type MergeOptions,
  type MergeResult,
} from '../merge/pipeline.js';
import type { Model } from '../onnx/model.js';
import { sumStatistics, type StatisticsSet } from '../stats/file.js';
import { DEFAULT_ALPHA_GRID, DEFAULT_BETA_GRID } from './experiment.js';

/**
 * How a merge's agreement with its sources is scored on unlabelled images. For source k with
 * classes T_k, its prediction is its argmax over T_k; the merge's prediction for k is its
 * argmax over T_k (head k's, for a merge with one head per source). The ensemble of the sources
 * assigns each image to the most confident source (the largest softmax probability over its
 * own classes), as the reference's joint rule does.
 *
 * - 'joint': the merge's joint prediction (the reference's rule: softmax within each task, then
 *   the argmax over all classes) equals the ensemble's, on every image;
 * - 'routed': the merge agrees with source k on the images the ensemble assigns to k;
 * - 'all': the merge agrees with source k on every image, averaged over k;
 * - 'confidence': as 'all', each image weighted by source k's confidence (its largest
 *   probability over T_k);
 * - 'soft': the merge's probability (softmax over T_k) of source k's prediction, averaged over
 *   every image and k;
 * - 'margin': as 'joint', each image weighted by the ensemble's routing margin (the most
 *   confident source's confidence minus the next one's), so that images the ensemble cannot
 *   place count little.
 */
export type AgreementRule = 'joint' | 'routed' | 'all' | 'confidence' | 'soft' | 'margin';

/** Every {@link AgreementRule}, in the order reports list them. */
export const AGREEMENT_RULES: readonly AgreementRule[] = [
  'joint',
  'routed',
  'all',
  'confidence',
  'soft',
  'margin',
];

/**
 * The rule `tuneMerge` chooses by when not told: the one that tracked the labelled choice best on
 * the ResNet-20 x1 pairs (bench/tune.ts).
 */
export const DEFAULT_AGREEMENT_RULE: AgreementRule = 'joint';

/** The share of the merge data held out for scoring when not told (1,000 of 5,000 images). */
export const DEFAULT_TUNE_HOLDOUT = 0.2;

/**
 * How many of the fitted images each grid point's merge resets its BatchNorm statistics on (or
 * REPAIR measures on) when not told. The reset is most of a grid point's time (16 s of 18 for
 * 4,000 images on the ResNet-20 x1 pair, 4 s for 1,000), and per-channel means and variances
 * over 1,000 images x every pixel are already close to their values over 4,000.
 */
export const DEFAULT_TUNE_RESET_IMAGES = 1000;

/** How to tune: the grid, the held-out share, the rule, and the merges' other options. */
export interface TuneOptions {
  /** Alphas to try (default the reference's grid, {@link DEFAULT_ALPHA_GRID}). */
  readonly alphas?: readonly number[];
  /** Betas to try (default {@link DEFAULT_BETA_GRID}). */
  readonly betas?: readonly number[];
  /**
   * The share of the merge data held out for scoring, in [0, 1) (default
   * {@link DEFAULT_TUNE_HOLDOUT}). 0 scores each merge on the images it was fitted to (and, when
   * every merge was reset on all of them, keeps the best merge as it is: no final merge).
   */
  readonly holdout?: number;
  /**
   * How many of the fitted images (spread evenly over them) each grid point's merge resets its
   * statistics on (default {@link DEFAULT_TUNE_RESET_IMAGES}); the final merge uses all.
   */
  readonly resetImages?: number;
  /** The score that chooses (default {@link DEFAULT_AGREEMENT_RULE}); all are reported. */
  readonly rule?: AgreementRule;
  /**
   * The merges' other options (method 'zipit'; alpha and beta come from the grid, the merged
   * width from `match`). Given `statistics` replace the statistics pass at every point.
   */
  readonly merge?: Omit<MergeOptions, 'method'>;
}

/** One grid point: its alpha and beta and its agreement under every rule (fractions). */
export interface TunePoint {
  readonly alpha: number;
  readonly beta: number;
  readonly agreement: Readonly<Record<AgreementRule, number>>;
}

/** What the tuning did. */
export interface Tuning {
  readonly rule: AgreementRule;
  readonly alphas: readonly number[];
  readonly betas: readonly number[];
  /** Alpha-major: every beta of the first alpha, then of the next. */
  readonly points: readonly TunePoint[];
  readonly chosen: { readonly alpha: number; readonly beta: number; readonly score: number };
  /** Images the merges were fitted to (statistics, BN reset) and images they were scored on. */
  readonly fitted: number;
  readonly scored: number;
  /** Of the fitted images, those each grid point's merge reset its statistics on. */
  readonly reset: number;
  readonly seconds: { statistics: number; grid: number; final: number };
}

/** The merge at the chosen point (with the tuning in its metadata), and the tuning. */
export interface TuneResult {
  readonly merge: MergeResult;
  readonly tuning: Tuning;
}

const now = (): number => performance.now() / 1000;

/** `count` of the images, spread evenly over the data's order (all of them if it has fewer). */
function spreadSubset(data: Dataset, count: number): Dataset {
  if (count >= data.count) return data;
  return subset(
    data,
    Array.from({ length: count }, (_, i) => Math.floor((i * data.count) / count)),
  );
}

/**
 * The images held out for scoring: `holdout` of them, spread evenly over the data's order (so a
 * class-sorted dataset loses as many of each class), and the rest.
 */
export function splitHoldout(data: Dataset, holdout: number): { fit: Dataset; scored: Dataset } {
  const fit: number[] = [];
  const scored: number[] = [];
  for (let i = 0; i < data.count; i++) {
    // Image i is held out when the running count of held-out images steps up at it.
    (Math.floor((i + 1) * holdout) > Math.floor(i * holdout) ? scored : fit).push(i);
  }
  return { fit: subset(data, fit), scored: subset(data, scored) };
}

/** Index of each class of `classes` among `source`'s logits; undefined if one is missing. */
function logitIndices(source: ScoreSource, classes: readonly number[]): number[] | undefined {
  const indices = classes.map((c) => source.labels.indexOf(c));
  return indices.every((i) => i >= 0) ? indices : undefined;
}

/** Position (in `indices`) of the largest of image `image`'s logits at `indices`; the first on ties. */
function argmaxAt(source: ScoreSource, image: number, indices: readonly number[]): number {
  const row = image * source.labels.length;
  let best = 0;
  for (let i = 1; i < indices.length; i++)
    if (source.logits[row + indices[i]!]! > source.logits[row + indices[best]!]!) best = i;
  return best;
}

/** The largest softmax probability of image `image`'s logits at `indices`. */
function confidenceAt(source: ScoreSource, image: number, indices: readonly number[]): number {
  const row = image * source.labels.length;
  let max = -Infinity;
  for (const i of indices) max = Math.max(max, source.logits[row + i]!);
  let sum = 0;
  for (const i of indices) sum += Math.exp(source.logits[row + i]! - max);
  return 1 / sum;
}

/** The softmax probability, over image `image`'s logits at `indices`, of the one at `indices[at]`. */
function probabilityAt(
  source: ScoreSource,
  image: number,
  indices: readonly number[],
  at: number,
): number {
  const row = image * source.labels.length;
  let max = -Infinity;
  for (const i of indices) max = Math.max(max, source.logits[row + i]!);
  let sum = 0;
  for (const i of indices) sum += Math.exp(source.logits[row + i]! - max);
  return Math.exp(source.logits[row + indices[at]!]! - max) / sum;
}

/**
 * The agreement of a merge with its sources on the same `count` images under every rule (see
 * {@link AgreementRule}). `sources[k]` is source k's one output; `merged` is the merge's one
 * output, or one head per source; `tasks[k]` are source k's classes.
 */
export function agreementScores(
  sources: readonly ScoreSource[],
  merged: readonly ScoreSource[],
  tasks: readonly (readonly number[])[],
): Result<Record<AgreementRule, number>> {
  const numModels = sources.length;
  const imagesOf = (s: ScoreSource): number => s.logits.length / Math.max(1, s.labels.length);
  const count = sources[0] !== undefined ? imagesOf(sources[0]) : 0;
  if ([...sources, ...merged].some((s) => imagesOf(s) !== count))
    return fail('bad-argument', 'Expected the merge and its sources scored on the same images.');
  if (tasks.length !== numModels)
    return fail(
      'bad-argument',
      `Expected one class set per model (${numModels}) to score the agreement, got ${tasks.length}.`,
    );
  if (merged.length !== 1 && merged.length !== numModels)
    return fail(
      'bad-argument',
      `Expected the merge to have one output or one per model (${numModels}), got ${merged.length}.`,
    );
  const sourceIndices: number[][] = [];
  const mergedIndices: number[][] = [];
  for (const [k, task] of tasks.entries()) {
    const own = logitIndices(sources[k]!, task);
    const head = logitIndices(merged[merged.length === 1 ? 0 : k]!, task);
    if (own === undefined || head === undefined)
      return fail(
        'bad-argument',
        `Model ${k + 1} (or the merge) has no logit for some class of ${task.join(',')}; check --tasks.`,
      );
    sourceIndices.push(own);
    mergedIndices.push(head);
  }
  // The ensemble's joint prediction of every image: the pseudo-label the merge's is scored on.
  const ensembleClass = new Uint8Array(count);
  let agreeAll = 0;
  let agreeRouted = 0;
  let soft = 0;
  let weighted = new Array<number>(numModels).fill(0);
  const weights = new Array<number>(numModels).fill(0);
  let marginAgreement = 0;
  let marginTotal = 0;
  for (let image = 0; image < count; image++) {
    let routedConfidence = -Infinity;
    let nextConfidence = -Infinity;
    let agreesRouted = false;
    // The merge's own joint prediction: the class of its most confident task.
    let mergedConfidence = -Infinity;
    let mergedClass = -1;
    for (let k = 0; k < numModels; k++) {
      const task = tasks[k]!;
      const head = merged[merged.length === 1 ? 0 : k]!;
      const own = argmaxAt(sources[k]!, image, sourceIndices[k]!);
      const mine = argmaxAt(head, image, mergedIndices[k]!);
      const confidence = confidenceAt(sources[k]!, image, sourceIndices[k]!);
      const agrees = own === mine;
      if (agrees) agreeAll += 1;
      soft += probabilityAt(head, image, mergedIndices[k]!, own);
      weights[k]! += confidence;
      if (agrees) weighted[k]! += confidence;
      if (confidence > routedConfidence) {
        nextConfidence = routedConfidence;
        routedConfidence = confidence;
        agreesRouted = agrees;
        ensembleClass[image] = task[own]!;
      } else if (confidence > nextConfidence) nextConfidence = confidence;
      const sure = confidenceAt(head, image, mergedIndices[k]!);
      if (sure > mergedConfidence) {
        mergedConfidence = sure;
        mergedClass = task[mine]!;
      }
    }
    if (agreesRouted) agreeRouted += 1;
    const margin = numModels > 1 ? routedConfidence - nextConfidence : 1;
    marginTotal += margin;
    if (mergedClass === ensembleClass[image]) marginAgreement += margin;
  }
  weighted = weighted.map((w, k) => (weights[k]! > 0 ? w / weights[k]! : 0));
  const joint = scoreTasks(merged, ensembleClass, tasks).joint;
  return ok({
    joint,
    routed: count > 0 ? agreeRouted / count : 0,
    all: count > 0 ? agreeAll / (count * numModels) : 0,
    confidence: weighted.reduce((a, b) => a + b, 0) / numModels,
    soft: count > 0 ? soft / (count * numModels) : 0,
    margin: marginTotal > 0 ? marginAgreement / marginTotal : 0,
  });
}

/** The first point with the highest score under `rule` (grid order breaks ties). */
export function choosePoint(points: readonly TunePoint[], rule: AgreementRule): TunePoint {
  return points.reduce((best, p) => (p.agreement[rule] > best.agreement[rule] ? p : best));
}

/** Checks a grid: at least one value, each a valid `name` (in [0, 1]), no repeats. */
function checkGrid(name: 'alpha' | 'beta', values: readonly number[]): Result<void> {
  if (values.length === 0) return fail('bad-argument', `Expected at least one ${name} to try.`);
  for (const value of values) {
    const parsed = parseMatchOptions({ [name]: value });
    if (!parsed.ok) return parsed;
  }
  if (new Set(values).size !== values.length)
    return fail('bad-argument', `Expected each ${name} once, got ${values.join(',')}.`);
  return ok(undefined);
}

/**
 * The merged model's record of the choice: `zipit.alpha` and `zipit.beta`, and `zipit.tuning`,
 * a JSON object with the rule, the grid, the images scored and every point's score.
 */
export function withTuningMetadata(model: Model, tuning: Tuning): Model {
  return {
    ...model,
    metadata: {
      ...model.metadata,
      'zipit.alpha': String(tuning.chosen.alpha),
      'zipit.beta': String(tuning.chosen.beta),
      'zipit.tuning': JSON.stringify({
        how: 'label-free: agreement of the merge with the source models on held-out merge images',
        rule: tuning.rule,
        fitted: tuning.fitted,
        scored: tuning.scored,
        reset: tuning.reset,
        alphas: tuning.alphas,
        betas: tuning.betas,
        scores: tuning.points.map((p) => Number(p.agreement[tuning.rule].toFixed(5))),
      }),
    },
  };
}

/**
 * Merges K >= 2 models with ZipIt! at the alpha and beta of the grid whose merge agrees best with
 * the sources' own predictions on held-out merge images (no labels read). `tasks[k]` are the
 * classes model k was trained on. Progress: the statistics pass, then one 'alpha/beta' event per
 * grid point, then the final merge.
 */
export async function tuneMerge(
  models: readonly Model[],
  labels: readonly string[],
  data: Dataset,
  normalization: Normalization & { mean: readonly number[]; std: readonly number[] },
  tasks: readonly (readonly number[])[],
  options: TuneOptions = {},
): Promise<Result<TuneResult>> {
  const alphas = options.alphas ?? DEFAULT_ALPHA_GRID;
  const betas = options.betas ?? DEFAULT_BETA_GRID;
  const rule = options.rule ?? DEFAULT_AGREEMENT_RULE;
  const holdout = options.holdout ?? DEFAULT_TUNE_HOLDOUT;
  for (const [name, values] of [
    ['alpha', alphas],
    ['beta', betas],
  ] as const) {
    const checked = checkGrid(name, values);
    if (!checked.ok) return checked;
  }
  if (!(holdout >= 0 && holdout < 1))
    return fail('bad-argument', `Expected the held-out share to be in [0, 1), got ${holdout}.`);
  const resetImages = options.resetImages ?? DEFAULT_TUNE_RESET_IMAGES;
  if (!Number.isInteger(resetImages) || resetImages < 1)
    return fail(
      'bad-argument',
      `Expected the images of each grid point's statistics reset to be a positive integer, got ${resetImages}.`,
    );
  if (tasks.length !== models.length)
    return fail(
      'bad-argument',
      `Choosing alpha/beta scores the merge against each model's own classes: expected one class set per model (${models.length}), got ${tasks.length}; give --tasks.`,
    );
  // The tasks are the classes each model was trained on: what a class-aware head (merge.head)
  // builds the classifier from, and what the merged model records.
  const base = { trainedClasses: tasks, ...options.merge };
  const { onProgress, statistics: given } = base;
  const mergedWidth = base.match?.mergedWidth;
  // The grid's merges report through the tuner's own events, not their phases.
  const quiet = { ...base, onProgress: undefined };
  const match = (alpha: number, beta: number) => ({
    alpha,
    beta,
    ...(mergedWidth !== undefined ? { mergedWidth } : {}),
  });
  const split = holdout > 0 ? splitHoldout(data, holdout) : { fit: data, scored: data };
  if (split.fit.count === 0 || split.scored.count === 0)
    return fail(
      'bad-argument',
      `${data.count} merge images cannot be split into images to fit and ${holdout} of them to score; use more --samples.`,
    );
  // The images each grid point's merge resets its statistics on.
  const reset = spreadSubset(split.fit, resetImages);
  const threads = base.threads ?? 2;
  const { mean, std } = normalization;
  const score = async (model: Model, label: string): Promise<Result<ScoreSource[]>> =>
    modelScores({ model, label, mean, std }, split.scored, {
      threads,
      ...(base.batchSize !== undefined ? { batchSize: base.batchSize } : {}),
    });

  const t0 = now();
  // The statistics of the images the merges fit to, and of the held-out ones (summed for the
  // final merge), unless the user gave statistics.
  const shard = async (part: Dataset): Promise<Result<StatisticsSet>> =>
    collectMergeStatistics(models, labels, part, normalization, {
      ...base,
      method: 'zipit',
      match: match(alphas[0]!, betas[0]!),
    });
  const fitStatistics = given !== undefined ? ok(given) : await shard(split.fit);
  if (!fitStatistics.ok) return fitStatistics;
  const sources: ScoreSource[] = [];
  for (const [k, model] of models.entries()) {
    const scores = await score(model, labels[k]!);
    if (!scores.ok) return scores;
    if (scores.value.length !== 1)
      return fail(
        'unsupported-model',
        `${labels[k]} has ${scores.value.length} scored outputs; choosing alpha/beta needs one output per source model.`,
      );
    sources.push(scores.value[0]!);
  }
  const t1 = now();

  const points: TunePoint[] = [];
  let best: { point: TunePoint; merge: MergeResult } | undefined;
  const total = alphas.length * betas.length;
  for (const alpha of alphas) {
    for (const beta of betas) {
      const merged = await mergeModels(models, labels, reset, normalization, {
        ...quiet,
        method: 'zipit',
        match: match(alpha, beta),
        statistics: fitStatistics.value,
      });
      if (!merged.ok) return fail(merged.reason, `alpha ${alpha}, beta ${beta}: ${merged.message}`);
      const scores = await score(merged.value.model, `merge at alpha ${alpha}, beta ${beta}`);
      if (!scores.ok) return scores;
      const agreement = agreementScores(sources, scores.value, tasks);
      if (!agreement.ok) return agreement;
      const point = { alpha, beta, agreement: agreement.value };
      points.push(point);
      // Fitted to all the images, the best merge is the result: keep it (and only it).
      if (
        reset === data &&
        (best === undefined || agreement.value[rule] > best.point.agreement[rule])
      )
        best = { point, merge: merged.value };
      onProgress?.({
        phase: 'alpha/beta',
        done: points.length,
        total,
        info: { alpha, beta, agreement: agreement.value[rule] },
      });
    }
  }
  const chosen = choosePoint(points, rule);
  const t2 = now();

  let merge: MergeResult;
  if (best !== undefined) {
    merge = best.merge;
  } else {
    let statistics: StatisticsSet;
    if (given !== undefined) statistics = given;
    else if (holdout === 0) statistics = fitStatistics.value;
    else {
      const heldOut = await shard(split.scored);
      if (!heldOut.ok) return heldOut;
      const summed = sumStatistics([
        { label: 'fitted images', statistics: fitStatistics.value },
        { label: 'held-out images', statistics: heldOut.value },
      ]);
      if (!summed.ok) return summed;
      statistics = summed.value;
    }
    const final = await mergeModels(models, labels, data, normalization, {
      ...base,
      method: 'zipit',
      match: match(chosen.alpha, chosen.beta),
      statistics,
    });
    if (!final.ok) return final;
    merge = final.value;
  }
  const t3 = now();
  const tuning: Tuning = {
    rule,
    alphas,
    betas,
    points,
    chosen: { alpha: chosen.alpha, beta: chosen.beta, score: chosen.agreement[rule] },
    fitted: split.fit.count,
    scored: split.scored.count,
    reset: reset.count,
    seconds: { statistics: t1 - t0, grid: t2 - t1, final: t3 - t2 },
  };
  return ok({ merge: { ...merge, model: withTuningMetadata(merge.model, tuning) }, tuning });
}
