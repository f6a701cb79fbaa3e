/** @file The merge pipeline: analyse K models, collect statistics, match each space, zip the weights, correct statistics. */
import { fail, ok, type Result } from '../errors.js';
import {
  batches,
  checkImageShape,
  type Batches,
  type Dataset,
  type Normalization,
} from '../data/dataset.js';
import type { CovarianceAccumulator } from '../stats/covariance.js';
import type { StatisticsSet } from '../stats/file.js';
import type { ChannelMoments } from '../stats/channel-moments.js';
import { analyzeGraph, type AnalyzedGraph } from '../graph/analyze.js';
import { intAttr } from '../graph/attributes.js';
import { analyzeSpaces, type FeatureSpace, type SpaceAnalysis } from '../graph/spaces.js';
import {
  matchers,
  parseMatchOptions,
  unitIntervalProblem,
  type MatchMethod,
} from '../match/index.js';
import { weightAverageMatching } from '../match/identity.js';
import type { Matching, MatchOptions } from '../match/types.js';
import { checkFiniteWeights, validIrVersion, type Model } from '../onnx/model.js';
import { modelImageShape, staticBatch } from '../onnx/model-io.js';
import {
  METADATA_KEYS,
  preprocessingMetadata,
  storedClassLabels,
  storedTasks,
  trainedClassesMetadata,
} from '../onnx/preprocessing.js';
import type { ProgressListener } from '../progress.js';
import { applyTransforms } from './apply.js';
import { classAwareHead, type AppliedHead, type HeadRule } from './class-head.js';
import { collectStatistics, type CollectedStatistics } from './collect.js';
import {
  correctionKind,
  planRepair,
  repairProducers,
  repairTargets,
  resetBatchNorm,
  type RepairPlan,
} from './repair.js';
import { checkMemoryBudget, estimateStatisticsMemory, spaceSizes } from './memory-estimate.js';
import { checkMergedWeightsFinite } from './finite-output.js';
import { buildMultiHead } from './multi-head.js';
import { findStopPoints, resolveStopPoint, type StopPoint } from './stop-points.js';
import { standardizeLogits, type LogitRule } from './logits.js';
import { resetSourceGraphs } from './source-reset.js';
import { checkSameStructure, type StructureMaps } from './structure.js';
import { transformFromGroups, type SpaceTransform } from './transform.js';
import { matchWeights } from './weight-matching.js';
import { ccaTransform } from './cca.js';
import { matchGrouped } from '../match/grouped.js';
import { headOrderMap, headOrders, reorderCorrelation } from '../match/heads.js';
import { alignmentFromPermutations, mixSimilarities, weightSimilarities } from './dual-space.js';

/** How a merge pairs attention heads across models (MergeOptions.heads). */
export const HEAD_ORDER_RULES = ['match', 'in-place'] as const;
export type HeadOrderRule = (typeof HEAD_ORDER_RULES)[number];

/** How to merge. */
export interface MergeOptions {
  readonly method: MatchMethod;
  /**
   * ZipIt!'s alpha and beta, each defaulting to the reference's (DEFAULT_MATCH_OPTIONS: 0.3,
   * 0.125; weight averaging and weight matching read neither), and the merged width (default:
   * the per-model width).
   */
  readonly match?: Partial<MatchOptions>;
  /** Correct statistics after merging (BN reset or REPAIR); default true. */
  readonly repair?: boolean;
  readonly batchSize?: number;
  readonly threads?: number;
  readonly onProgress?: ProgressListener;
  /**
   * Partial zipping: zip up to this stop point (a node name, space id or fraction of the weight
   * layers; see stop-points.ts) and give each model its own head. Models whose heads score
   * different classes are always merged this way, at the deepest stop point by default.
   */
  readonly stopAt?: string;
  /** Refuse before the statistics pass when its estimated memory exceeds this many bytes. */
  readonly memoryLimit?: number;
  /**
   * Precomputed statistics (e.g. summed shards from `zipit stats`), keyed by {@link statisticsKey}.
   * Weight matching ('weights') reads no statistics and refuses them.
   */
  readonly statistics?: StatisticsSet;
  /**
   * The classes each model was trained on, one set per model (default: the models'
   * `zipit.trained_classes` metadata). Recorded in the merged model, and read by `head`.
   */
  readonly trainedClasses?: readonly (readonly number[])[];
  /**
   * How a full merge builds the classifier (class-head.ts): 'average' (the default, the
   * paper's) averages every model's row; 'class-aware' makes output class j from the rows of the
   * models trained on j (the trained classes must be known); 'auto' is class-aware when they are
   * known, else average (the CLI's default, RECOMMENDED_MERGE in recommended.ts).
   */
  readonly head?: HeadRule;
  /**
   * Reset the sources' BatchNorm statistics on the merge data before measuring them, as the
   * reference's evaluation scripts do (source-reset.ts); no effect on models without BN.
   * 'already': the caller reset them on this merge data (`resetSources`, once for several
   * merges): recorded as reset, not repeated.
   */
  readonly resetSources?: boolean | 'already';
  /**
   * The merged logits: 'raw' as merged, or 'standardize'd to mean 0 and std 1 per class over
   * the merge data (logits.ts); a partial zip standardises each of its heads.
   */
  readonly logits?: LogitRule;
  /**
   * Dual-space similarity (dual-space.ts): ZipIt! and Permute match on this share, in [0, 1],
   * of the features' weight cosine similarity mixed into their activation correlation.
   * Default 0 (activations alone, the paper's).
   */
  readonly weightSimilarity?: number;
  /**
   * Attention heads (match/heads.ts): 'match' (default) reorders each model's heads to face
   * model 0's most similar ones before matching channels within heads; 'in-place' pairs head i
   * with head i.
   */
  readonly heads?: HeadOrderRule;
  /** CCA merge's ridge, relative to each covariance's mean variance (default DEFAULT_CCA_RIDGE, cca.ts). */
  readonly ccaRidge?: number;
}

/** Per space, what the matcher did. */
export interface SpaceReport {
  readonly id: number;
  readonly width: number;
  readonly kind: string;
  readonly crossModelMerges: number;
  readonly sameModelMerges: number;
}

/** What a merge did and how long each phase took (seconds). */
export interface MergeReport {
  readonly method: MatchMethod;
  /** alpha and beta, and the weight similarity's share when dual-space similarity was on. */
  readonly parameters: {
    readonly alpha: number;
    readonly beta: number;
    readonly weightSimilarity?: number;
  };
  readonly numModels: number;
  readonly spacesMerged: number;
  readonly spaces: readonly SpaceReport[];
  readonly correction: 'batchnorm' | 'repair' | 'none';
  /** How the classifier of a full merge was built ('average' also when classes were unknown). */
  readonly head: AppliedHead;
  /** Whether the sources' BatchNorm statistics were reset on the merge data first. */
  readonly sourcesReset: boolean;
  /** Whether the merged logits (every head of a partial zip) were standardised. */
  readonly logits: LogitRule;
  /** Where the trunk ends for partial zipping (absent for a full zip). */
  readonly stopAt?: {
    readonly id: string;
    readonly space: number;
    readonly zipped: number;
    readonly total: number;
  };
  readonly seconds: {
    sourceReset: number;
    statistics: number;
    matching: number;
    apply: number;
    repair: number;
    logits: number;
  };
}

/** The merged model and its report. */
export interface MergeResult {
  readonly model: Model;
  readonly report: MergeReport;
  /** Space analysis of the sources, and the correlation matrices per space (for reports). */
  readonly spaces: readonly FeatureSpace[];
  readonly correlations: ReadonlyMap<number, Float64Array>;
}

const now = (): number => performance.now() / 1000;

/** Analyses every model. */
export function analyzeModels(
  models: readonly Model[],
  labels: readonly string[],
): Result<AnalyzedGraph[]> {
  const graphs: AnalyzedGraph[] = [];
  for (const [k, model] of models.entries()) {
    const graph = analyzeGraph(model);
    if (!graph.ok) return fail(graph.reason, `${labels[k]}: ${graph.message}`);
    graphs.push(graph.value);
  }
  return ok(graphs);
}

/** True when the models' heads score different classes (disjoint heads): they cannot be zipped together. */
function headsDiffer(models: readonly Model[]): boolean {
  const labels = models.map((m) => JSON.stringify(storedClassLabels(m) ?? null));
  return labels.some((l) => l !== labels[0]);
}

/**
 * The first node that scales channels one by one (CCA merge refuses them: a dense map of the
 * channels does not commute with a per-channel scale): a normalisation, PRelu, a grouped
 * convolution, or a Mul by a constant of more than one value.
 */
function perChannelScale(model: Model): string | undefined {
  const constant = (name: string): number => model.graph.initializers.get(name)?.data.length ?? 0;
  const node = model.graph.nodes.find(
    (n) =>
      ['BatchNormalization', 'LayerNormalization', 'InstanceNormalization', 'PRelu'].includes(
        n.opType,
      ) ||
      (n.opType === 'Conv' && intAttr(n, 'group', 1) > 1) ||
      (n.opType === 'Mul' && n.inputs.some((i) => constant(i) > 1)),
  );
  return node === undefined ? undefined : `${node.opType} node '${node.name}'`;
}

/** Bytes of every initializer of the models (what their sessions and copies scale with). */
function weightBytes(models: readonly Model[]): number {
  let bytes = 0;
  for (const model of models)
    for (const tensor of model.graph.initializers.values()) bytes += tensor.data.byteLength;
  return bytes;
}

/**
 * What every merge stage shares: the validated matching options, analysed graphs, name maps,
 * the stop point, the spaces to merge, the batches.
 */
interface Prepared {
  readonly match: MatchOptions;
  readonly graphs: AnalyzedGraph[];
  readonly spaces: SpaceAnalysis;
  readonly stop: StopPoint | undefined;
  readonly maps: StructureMaps;
  readonly mergeable: FeatureSpace[];
  readonly inputDims: number[];
  readonly pass: Batches;
  /** Each model's trained classes, when given or stored in every model; else undefined. */
  readonly trained: readonly (readonly number[])[] | undefined;
}

/** Validates the inputs and plans the merge, before any inference. */
function prepare(
  models: readonly Model[],
  labels: readonly string[],
  data: Dataset,
  normalization: Normalization,
  options: MergeOptions,
): Result<Prepared> {
  if (models.length < 2)
    return fail('bad-argument', `Expected at least 2 models to merge, got ${models.length}.`);
  // Validate what the user chose before the expensive pass, not once per space after it.
  const parsed = parseMatchOptions({
    method: options.method,
    alpha: options.match?.alpha,
    beta: options.match?.beta,
  });
  if (!parsed.ok) return parsed;
  const share = options.weightSimilarity;
  const shareProblem =
    share === undefined ? undefined : unitIntervalProblem('weight-similarity', share);
  if (shareProblem !== undefined) return fail('bad-argument', shareProblem);
  if (options.method === 'cca') {
    const scaled = models.map(perChannelScale).find((n) => n !== undefined);
    if (scaled !== undefined)
      return fail(
        'unsupported-model',
        `CCA merge mixes channels densely, and the ${scaled} scales each channel on its own: merge exports with BatchNorm folded into the convolutions (PyTorch: the default eval export), or use --method zipit.`,
      );
    if (options.match?.mergedWidth !== undefined)
      return fail(
        'bad-argument',
        'Expected no --merged-width with --method cca: it maps every model onto the per-model width.',
      );
  }
  if (options.method === 'weights' && options.statistics !== undefined)
    return fail(
      'bad-argument',
      'Expected no statistics files with --method weights: it matches on the weights alone.',
    );
  // The merged width is checked by the matcher, against each space's width.
  const mergedWidth = options.match?.mergedWidth;
  const match = { ...parsed.value.options, ...(mergedWidth !== undefined ? { mergedWidth } : {}) };
  const trained = options.trainedClasses ?? storedTasks(models);
  if (options.trainedClasses !== undefined && options.trainedClasses.length !== models.length)
    return fail(
      'bad-argument',
      `Expected one set of trained classes per model (${models.length}), got ${options.trainedClasses.length}.`,
    );
  if (options.head === 'class-aware' && trained?.length !== models.length)
    return fail(
      'bad-argument',
      `The class-aware head needs the classes each model was trained on: pass --tasks with one set per model (${models.length}), e.g. 0,2,4,6,8/1,3,5,7,9.`,
    );
  for (const [k, model] of models.entries()) {
    const finite = checkFiniteWeights(model);
    if (!finite.ok) return fail(finite.reason, `${labels[k]}: ${finite.message}`);
  }
  const analyzed = analyzeModels(models, labels);
  if (!analyzed.ok) return analyzed;
  const graphs = analyzed.value;
  const spaces = analyzeSpaces(graphs[0]!);
  if (!spaces.ok) return spaces;
  const stop = chooseStopPoint(models, graphs[0]!, spaces.value, options.stopAt);
  if (!stop.ok) return stop;
  // Attention heads must keep their channels apart; CCA's dense maps would mix them (weight
  // matching assigns within each head, weight-matching.ts).
  const headed = spaces.value.spaces.find((s) => (s.groups ?? 1) > 1);
  if (headed !== undefined && options.method === 'cca')
    return fail(
      'bad-argument',
      `--method cca cannot merge attention heads (space ${headed.id} is split into ${headed.groups}); use --method zipit, permute, wavg or weights.`,
    );
  // A head reads its source's channels of the cut through a 0/1 map (multi-head.ts); CCA's
  // unmerge is dense.
  if (options.method === 'cca' && stop.value !== undefined)
    return fail(
      'bad-argument',
      'CCA merge makes dense maps, which a partial zip cannot hand to one head per model: merge fully (no --stop-at; the models must score the same classes), or use --method zipit.',
    );
  const maps = checkSameStructure(graphs, labels, stop.value ? stop.value.position + 1 : undefined);
  if (!maps.ok) return maps;
  const shape = modelImageShape(models[0]!);
  if (shape !== undefined) {
    const fits = checkImageShape(data, shape, labels[0]);
    if (!fits.ok) return fits;
  }
  const mergeable = spacesToMerge(graphs[0]!, spaces.value, stop.value);
  const inputDims = [data.channels, data.height, data.width];
  // A model exported without a dynamic batch axis takes batches of exactly its batch size.
  const batchSize = staticBatch(models[0]!) ?? options.batchSize ?? 128;
  const pass = batches(data, {
    batchSize,
    normalization,
    dropLast: staticBatch(models[0]!) !== undefined,
  });
  if (options.memoryLimit !== undefined) {
    const estimate = estimateStatisticsMemory(
      models.length,
      spaceSizes(graphs[0]!, mergeable),
      batchSize,
      {
        method: parsed.value.method,
        modelBytes: weightBytes(models),
        weightSimilarity: usesWeightSimilarity(options),
      },
    );
    const fits = checkMemoryBudget(estimate, models.length, options.memoryLimit);
    if (!fits.ok) return fits;
  }
  if (!pass.ok) return pass;
  return ok({
    match,
    graphs,
    spaces: spaces.value,
    stop: stop.value,
    maps: maps.value,
    mergeable,
    inputDims,
    pass: pass.value,
    // A merged model stores one set per head: only one set per source describes these models.
    trained: trained?.length === models.length ? trained : undefined,
  });
}

/**
 * Where the trunk ends: the user's stop point, else the deepest one when the models' heads
 * score different classes (they cannot be zipped together), else none (a full zip).
 */
function chooseStopPoint(
  models: readonly Model[],
  graph: AnalyzedGraph,
  spaces: SpaceAnalysis,
  stopAt: string | undefined,
): Result<StopPoint | undefined> {
  if (stopAt === undefined && !headsDiffer(models)) return ok(undefined);
  const points = findStopPoints(graph, spaces);
  if (stopAt !== undefined) return resolveStopPoint(points, stopAt);
  const deepest = points[points.length - 1];
  if (deepest === undefined)
    return fail(
      'unsupported-model',
      'The models score different classes but have no point where one head per model could start.',
    );
  return ok(deepest);
}

/**
 * The spaces to merge: every non-fixed one, and with a stop point only the trunk's. The cut's
 * space may go on in the heads (a residual stream cut mid-stage): it is measured at the cut,
 * the only point the trunk has, and only its trunk producers are merged.
 */
function spacesToMerge(
  graph: AnalyzedGraph,
  spaces: SpaceAnalysis,
  stop: StopPoint | undefined,
): FeatureSpace[] {
  const nonFixed = spaces.spaces.filter((s) => s.kind !== 'fixed');
  if (stop === undefined) return nonFixed;
  const position = new Map(graph.model.graph.nodes.map((n, i) => [n.name, i]));
  const inTrunk = (node: string | undefined): boolean =>
    (position.get(node ?? '') ?? Infinity) <= stop.position;
  return nonFixed
    .filter((s) => s.producers.some(inTrunk))
    .map((s) =>
      s.id === stop.space
        ? {
            ...s,
            site: { value: stop.value, offset: 0, ...(stop.axis !== 1 ? { axis: stop.axis } : {}) },
            producerOutputs: s.producerOutputs.filter((v) => inTrunk(graph.producer.get(v)?.name)),
          }
        : s,
    );
}

/**
 * The correlation of an accumulator, returned alone so that the covariance finalize also
 * computes is garbage before matching starts (it is as large as the correlation).
 */
function finalizeCorrelation(accumulator: CovarianceAccumulator): Result<Float64Array> {
  const statistics = accumulator.finalize();
  return statistics.ok ? ok(statistics.value.correlation) : statistics;
}

/** The key of a space's statistics in a statistics file: its id and where it was measured. */
export function statisticsKey(space: FeatureSpace): string {
  return `space ${space.id} at ${space.site?.value ?? '?'}`;
}

/**
 * Collects the K-stacked statistics of every space the merge would zip, without merging: what
 * one machine computes on its shard of the data (`zipit stats`); shards are summed later.
 */
export async function collectMergeStatistics(
  models: readonly Model[],
  labels: readonly string[],
  data: Dataset,
  normalization: Normalization,
  options: MergeOptions,
): Promise<Result<StatisticsSet>> {
  const prepared = prepare(models, labels, data, normalization, options);
  if (!prepared.ok) return prepared;
  const reset = await withSourcesReset(prepared.value, options);
  if (!reset.ok) return reset;
  const { graphs, maps, mergeable, pass, inputDims } = reset.value.plan;
  const collected = await collectStatistics(graphs, maps.values, mergeable, pass, inputDims, {
    threads: options.threads ?? 2,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  if (!collected.ok) return collected;
  return ok(
    new Map(mergeable.map((s) => [statisticsKey(s), collected.value.covariance.get(s.id)!])),
  );
}

/**
 * Merges K >= 2 models of one structure into one (ZipIt!, Permute or weight averaging) on
 * `data` (unlabelled use: labels are ignored), normalised with `normalization`.
 */
export async function mergeModels(
  models: readonly Model[],
  labels: readonly string[],
  data: Dataset,
  normalization: Normalization,
  options: MergeOptions,
): Promise<Result<MergeResult>> {
  const prepared = prepare(models, labels, data, normalization, options);
  if (!prepared.ok) return prepared;
  const tReset = now();
  const reset = await withSourcesReset(prepared.value, options);
  if (!reset.ok) return reset;
  const plan = reset.value.plan;
  const correction = planCorrection(plan, options.repair ?? true);

  const t0 = now();
  const collected = await collectPhase(
    plan,
    options,
    correction.kind === 'repair' ? correction.plan.sourceValues : [],
  );
  if (!collected.ok) return collected;
  const t1 = now();
  const matched = matchSpaces(plan, collected.value.covariance, options, models.length);
  if (!matched.ok) return matched;
  const t2 = now();
  const assembled = assemble(plan, labels, matched.value.transforms, options.head ?? 'average');
  const t3 = now();
  const corrected = await correctStatistics(assembled.model, correction, plan, options, {
    transforms: matched.value.transforms,
    moments: collected.value.moments,
  });
  if (!corrected.ok) return corrected;
  const t4 = now();
  const logits = options.logits ?? 'raw';
  const calibrated =
    logits === 'standardize'
      ? await standardizeLogits(corrected.value, plan.pass, plan.inputDims, {
          threads: options.threads ?? 2,
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        })
      : ok(corrected.value);
  if (!calibrated.ok) return calibrated;
  const t5 = now();
  const finite = checkMergedWeightsFinite(calibrated.value, normalization);
  if (!finite.ok) return finite;
  return ok({
    model: withMergeMetadata(
      calibrated.value,
      models,
      labels,
      normalization,
      plan.inputDims,
      options.method,
      options.trainedClasses,
      {
        head: assembled.head,
        logits,
        sourcesReset: reset.value.reset,
        weightSimilarity: usesWeightSimilarity(options) ? options.weightSimilarity : 0,
      },
    ),
    spaces: plan.spaces.spaces,
    correlations: matched.value.correlations,
    report: {
      method: options.method,
      parameters: {
        alpha: plan.match.alpha,
        beta: plan.match.beta,
        ...(usesWeightSimilarity(options) ? { weightSimilarity: options.weightSimilarity } : {}),
      },
      numModels: models.length,
      spacesMerged: plan.mergeable.length,
      spaces: matched.value.reports,
      correction: correction.kind,
      head: assembled.head,
      sourcesReset: reset.value.reset,
      logits,
      ...(plan.stop
        ? {
            stopAt: {
              id: plan.stop.id,
              space: plan.stop.space,
              zipped: plan.stop.zipped,
              total: plan.stop.total,
            },
          }
        : {}),
      seconds: {
        sourceReset: t0 - tReset,
        statistics: t1 - t0,
        matching: t2 - t1,
        apply: t3 - t2,
        repair: t4 - t3,
        logits: t5 - t4,
      },
    },
  });
}

/**
 * The plan with its sources' BatchNorm statistics reset on the merge data when asked for and
 * the sources have BN (weight averaging and weight matching too: their BN reset after merging
 * then starts from the same sources as the reference's).
 */
async function withSourcesReset(
  plan: Prepared,
  options: MergeOptions,
): Promise<Result<{ plan: Prepared; reset: boolean }>> {
  const hasBatchNorm = correctionKind(plan.graphs[0]!) === 'batchnorm';
  if (options.resetSources === 'already') return ok({ plan, reset: hasBatchNorm });
  if (options.resetSources !== true || !hasBatchNorm) return ok({ plan, reset: false });
  // The sources' running statistics reach the merged model only through the statistics pass
  // (the matching) and the merged BN nodes' running statistics, which the BN reset after merging
  // overwrites: with no pass to feed and that reset on, resetting the sources changes nothing.
  const readsSources =
    options.statistics === undefined && options.method !== 'wavg' && options.method !== 'weights';
  if (!readsSources && (options.repair ?? true)) return ok({ plan, reset: false });
  const graphs = await resetSourceGraphs(plan.graphs, plan.pass, plan.inputDims, {
    threads: options.threads ?? 2,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return graphs.ok ? ok({ plan: { ...plan, graphs: graphs.value }, reset: true }) : graphs;
}

/**
 * The one pass of the sources over the merge data: every space's K-stacked covariance, and the
 * per-channel moments of `momentValues` that REPAIR's targets are made of.
 */
async function collectPhase(
  prepared: Prepared,
  options: MergeOptions,
  momentValues: readonly string[],
): Promise<Result<CollectedStatistics>> {
  const { graphs, maps, mergeable, pass, inputDims } = prepared;
  // Precomputed (summed shard) statistics replace the covariance pass, and weight averaging and
  // weight matching need none (wavg pairs feature i with feature i; weights matches on the
  // weights): a wavg of two 8,000-wide MLPs peaked at 7.1 GB for statistics it never read.
  // REPAIR's source moments still need the sources run; without them there is no pass at all.
  const skipCovariance =
    options.statistics !== undefined || options.method === 'wavg' || options.method === 'weights';
  if (skipCovariance && momentValues.length === 0)
    return ok({ covariance: new Map(), moments: graphs.map(() => new Map()), fusedBatches: 0 });
  // REPAIR's targets at a transformer's MatMul outputs have their channels last.
  const momentAxes = new Map(
    momentValues.flatMap((v) => {
      const axis = prepared.spaces.layouts.get(v)?.axis ?? 1;
      return axis === 1 ? [] : [[v, axis] as const];
    }),
  );
  return collectStatistics(graphs, maps.values, mergeable, pass, inputDims, {
    threads: options.threads ?? 2,
    momentValues,
    ...(momentAxes.size > 0 ? { momentAxes } : {}),
    ...(skipCovariance ? { skipCovariance: true } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** What matching produced: a transform per space, what the matcher did, the correlations. */
interface Matched {
  readonly transforms: Map<number, SpaceTransform>;
  readonly reports: SpaceReport[];
  readonly correlations: Map<number, Float64Array>;
}

/**
 * Matches every mergeable space on its correlation, from the pass's covariance or the given
 * statistics (weight averaging without statistics needs none), or on the weights alone (weight
 * matching, all spaces at once), into merge/unmerge transforms.
 */
function matchSpaces(
  prepared: Prepared,
  covariance: Map<number, CovarianceAccumulator>,
  options: MergeOptions,
  numModels: number,
): Result<Matched> {
  const { mergeable, match } = prepared;
  const transforms = new Map<number, SpaceTransform>();
  const reports: SpaceReport[] = [];
  const correlations = new Map<number, Float64Array>();
  let byWeights: ReadonlyMap<number, Matching> | undefined;
  if (options.method === 'weights') {
    const found = matchWeights(
      prepared.graphs,
      prepared.maps.initializers,
      prepared.spaces,
      mergeable,
      {
        ...(match.mergedWidth !== undefined ? { mergedWidth: match.mergedWidth } : {}),
      },
    );
    if (!found.ok) return found;
    byWeights = found.value.matchings;
  }
  const correlationOf = (space: FeatureSpace): Result<Float64Array> => {
    const accumulator = accumulatorOf(space, covariance, options, numModels);
    if (!accumulator.ok) return accumulator;
    const correlation = finalizeCorrelation(accumulator.value);
    if (!correlation.ok)
      return fail(correlation.reason, `Space ${space.id}: ${correlation.message}`);
    // The accumulator is not needed again: release its (Kn)^2 Gram before matching.
    covariance.delete(space.id);
    correlations.set(space.id, correlation.value);
    return correlation;
  };
  // A space's similarity for matching: the mixed one, or its correlation (finalized once).
  const similarityOf = (space: FeatureSpace): Result<Float64Array> =>
    mixed?.has(space.id)
      ? ok(mixed.get(space.id)!)
      : correlations.has(space.id)
        ? ok(correlations.get(space.id)!)
        : correlationOf(space);
  const orders = new Map<number, Int32Array | undefined>();
  const headOrderOf = (space: FeatureSpace): Result<Int32Array | undefined> => {
    const heads = space.groups ?? 1;
    const attention = prepared.spaces.attention.find(
      (a) => a.queryKey === space.id || a.value === space.id,
    );
    if (heads <= 1 || attention === undefined || (options.heads ?? 'match') === 'in-place')
      return ok(undefined);
    const known = orders.get(space.id);
    if (known !== undefined || orders.has(space.id)) return ok(known);
    const partners = [attention.queryKey, attention.value].map((id) =>
      mergeable.find((s) => s.id === id),
    );
    let map: Int32Array | undefined;
    if (partners.every((p) => p !== undefined && p.width === space.width && p.groups === heads)) {
      const correlations: Float64Array[] = [];
      for (const partner of partners) {
        const similarity = similarityOf(partner!);
        if (!similarity.ok) return similarity;
        correlations.push(similarity.value);
      }
      const found = headOrders({ correlations, numModels, width: space.width, heads });
      map = headOrderMap(found, space.width, heads);
    }
    orders.set(attention.queryKey, map);
    orders.set(attention.value, map);
    return ok(map);
  };
  let mixed: ReadonlyMap<number, Float64Array> | undefined;
  if (usesWeightSimilarity(options)) {
    const dual = dualSpaceSimilarities(
      prepared,
      correlationOf,
      options.weightSimilarity,
      numModels,
    );
    if (!dual.ok) return dual;
    mixed = dual.value;
  }
  for (const [i, space] of mergeable.entries()) {
    if (options.method === 'cca') {
      const transform = ccaSpace(space, covariance, options, numModels);
      if (!transform.ok) return transform;
      transforms.set(space.id, transform.value);
      reports.push({
        id: space.id,
        width: space.width,
        kind: space.kind,
        crossModelMerges: (numModels - 1) * space.width,
        sameModelMerges: 0,
      });
      options.onProgress?.({ phase: 'matching', done: i + 1, total: mergeable.length });
      continue;
    }
    let matching: Result<Matching>;
    if (options.method === 'weights') {
      matching = ok(byWeights!.get(space.id)!);
    } else if (options.method === 'wavg' && options.statistics === undefined) {
      matching = weightAverageMatching(numModels, space.width, match.mergedWidth);
    } else {
      const correlation = similarityOf(space);
      if (!correlation.ok) return correlation;
      // Attention heads are matched head by head (match/grouped.ts), after each model's heads
      // are put in the order that faces model 0's (match/heads.ts).
      const order = headOrderOf(space);
      if (!order.ok) return order;
      const map = order.value;
      const grouped = matchGrouped(
        matchers[options.method],
        map === undefined ? correlation.value : reorderCorrelation(correlation.value, map),
        numModels,
        space.width,
        space.groups ?? 1,
        match,
      );
      matching =
        !grouped.ok || map === undefined
          ? grouped
          : ok({
              ...grouped.value,
              groups: grouped.value.groups.map((g) => g.map((p) => map[p]!).sort((a, b) => a - b)),
            });
    }
    if (!matching.ok) return fail(matching.reason, `Space ${space.id}: ${matching.message}`);
    transforms.set(space.id, transformFromGroups(matching.value.groups, numModels, space.width));
    reports.push({
      id: space.id,
      width: space.width,
      kind: space.kind,
      crossModelMerges: matching.value.crossModelMerges,
      sameModelMerges: matching.value.sameModelMerges,
    });
    options.onProgress?.({ phase: 'matching', done: i + 1, total: mergeable.length });
  }
  return ok({ transforms, reports, correlations });
}

/** A space's statistics: from the pass, or from the given (summed shard) statistics. */
function accumulatorOf(
  space: FeatureSpace,
  covariance: ReadonlyMap<number, CovarianceAccumulator>,
  options: MergeOptions,
  numModels: number,
): Result<CovarianceAccumulator> {
  return options.statistics === undefined
    ? ok(covariance.get(space.id)!)
    : givenCovariance(options.statistics, space, numModels);
}

/** A space's CCA merge (cca.ts) from its covariance, from the pass or the given statistics. */
function ccaSpace(
  space: FeatureSpace,
  covariance: Map<number, CovarianceAccumulator>,
  options: MergeOptions,
  numModels: number,
): Result<SpaceTransform> {
  const accumulator = accumulatorOf(space, covariance, options, numModels);
  if (!accumulator.ok) return accumulator;
  const statistics = accumulator.value.finalize();
  if (!statistics.ok) return fail(statistics.reason, `Space ${space.id}: ${statistics.message}`);
  covariance.delete(space.id);
  const transform = ccaTransform(
    statistics.value.covariance,
    numModels,
    space.width,
    options.ccaRidge,
  );
  return transform.ok
    ? transform
    : fail(transform.reason, `Space ${space.id}: ${transform.message}`);
}

/** Whether the matching mixes weight similarity in: a positive share, and a method that reads similarities. */
function usesWeightSimilarity(
  options: MergeOptions,
): options is MergeOptions & { readonly weightSimilarity: number } {
  return (
    (options.weightSimilarity ?? 0) > 0 &&
    (options.method === 'zipit' || options.method === 'permute')
  );
}

/**
 * Dual-space similarities (dual-space.ts) of every mergeable space: the activation correlation
 * mixed with the weights' cosine similarity, `share` of the latter; the weights of different
 * models are compared through the Permute alignment of the same correlations.
 */
function dualSpaceSimilarities(
  prepared: Prepared,
  correlationOf: (space: FeatureSpace) => Result<Float64Array>,
  share: number,
  numModels: number,
): Result<Map<number, Float64Array>> {
  const activation = new Map<number, Float64Array>();
  const permutations = new Map<number, Matching>();
  for (const space of prepared.mergeable) {
    const correlation = correlationOf(space);
    if (!correlation.ok) return correlation;
    activation.set(space.id, correlation.value);
    const permuted = matchers.permute(correlation.value, numModels, space.width, {
      alpha: 0,
      beta: 0,
    });
    if (!permuted.ok) return fail(permuted.reason, `Space ${space.id}: ${permuted.message}`);
    permutations.set(space.id, permuted.value);
  }
  const similarities = weightSimilarities(
    prepared.graphs,
    prepared.maps.initializers,
    prepared.spaces,
    prepared.mergeable,
    alignmentFromPermutations(permutations, numModels),
  );
  // Each space's weight similarity is released once mixed: (Kn)^2 float64 each.
  const mixed = new Map<number, Float64Array>();
  for (const [id, r] of activation) {
    mixed.set(id, mixSimilarities(r, similarities.get(id)!, share));
    similarities.delete(id);
  }
  return ok(mixed);
}

/** A space's covariance from precomputed statistics, which must be for this merge's sizes. */
function givenCovariance(
  statistics: StatisticsSet,
  space: FeatureSpace,
  numModels: number,
): Result<CovarianceAccumulator> {
  const given = statistics.get(statisticsKey(space));
  if (given === undefined)
    return fail(
      'bad-statistics',
      `The statistics files have no '${statisticsKey(space)}'; compute them with the same models and --stop-at.`,
    );
  if (given.numModels !== numModels || given.width !== space.width) {
    return fail(
      'bad-statistics',
      `'${statisticsKey(space)}' in the statistics files is for ${given.numModels} models x ${given.width} channels, not ${numModels} x ${space.width}.`,
    );
  }
  return ok(given);
}

/**
 * The merged model before correction: the transforms applied to the weights and, with a stop
 * point, one head per source after the cut, reading U_k f*.
 */
function assemble(
  prepared: Prepared,
  labels: readonly string[],
  transforms: ReadonlyMap<number, SpaceTransform>,
  rule: HeadRule,
): { model: Model; head: AppliedHead } {
  const { graphs, maps, spaces, stop, trained } = prepared;
  if (stop === undefined) {
    const head =
      rule !== 'average' && trained !== undefined
        ? classAwareHead(graphs[0]!.model, spaces, trained)
        : undefined;
    // The logits' space is fixed, so no matching ever transforms it; if it were merged, the
    // matching's transform stands.
    if (head === undefined || transforms.has(head.space))
      return {
        model: applyTransforms(graphs, maps.initializers, spaces, transforms),
        head: 'average',
      };
    const withHead = new Map(transforms).set(head.space, head.transform);
    return {
      model: applyTransforms(graphs, maps.initializers, spaces, withHead),
      head: 'class-aware',
    };
  }
  // Partial zipping keeps every model's own head.
  const merged = applyTransforms(graphs, maps.initializers, spaces, transforms);
  return {
    model: buildMultiHead(
      merged,
      graphs,
      labels,
      maps.values,
      stop,
      transforms.get(stop.space)!.columns,
    ),
    head: 'average',
  };
}

/** Which statistics correction a merge does; REPAIR's plan says which source moments it needs. */
type Correction =
  | { readonly kind: 'none' }
  | { readonly kind: 'batchnorm' }
  | { readonly kind: 'repair'; readonly plan: RepairPlan };

/** A BN reset for models with BN nodes, else REPAIR; none when the user turned it off. */
function planCorrection(prepared: Prepared, enabled: boolean): Correction {
  if (!enabled) return { kind: 'none' };
  const source = prepared.graphs[0]!;
  return correctionKind(source) === 'batchnorm'
    ? { kind: 'batchnorm' }
    : { kind: 'repair', plan: planRepair(source, prepared.mergeable, prepared.stop) };
}

/**
 * Corrects the activation statistics that averaging and the non-linearities shifted: a BN
 * reset on the merge data, or REPAIR toward the sources' statistics (whose moments the
 * statistics pass recorded), folded into the producers.
 */
async function correctStatistics(
  merged: Model,
  correction: Correction,
  prepared: Prepared,
  options: MergeOptions,
  matched: {
    readonly transforms: ReadonlyMap<number, SpaceTransform>;
    readonly moments: readonly ReadonlyMap<string, ChannelMoments>[];
  },
): Promise<Result<Model>> {
  if (correction.kind === 'none') return ok(merged);
  const graph = analyzeGraph(merged);
  if (!graph.ok) return graph;
  const { pass, inputDims, maps } = prepared;
  const runOptions = {
    threads: options.threads ?? 2,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
  if (correction.kind === 'batchnorm')
    return resetBatchNorm(graph.value, pass, inputDims, runOptions);
  const targets = repairTargets(correction.plan, matched.transforms, matched.moments, maps.values);
  const repaired = await repairProducers(graph.value, targets, pass, inputDims, runOptions);
  return repaired.ok ? ok(repaired.value.model) : repaired;
}

/**
 * The merged model's file fields and metadata: written by zipit-merge, the preprocessing the
 * statistics were measured with, the method and sources, and the sources' trained classes.
 */
function withMergeMetadata(
  merged: Model,
  models: readonly Model[],
  labels: readonly string[],
  normalization: Normalization,
  inputDims: readonly number[],
  method: MatchMethod,
  given: readonly (readonly number[])[] | undefined,
  how: { head: AppliedHead; logits: LogitRule; sourcesReset: boolean; weightSimilarity: number },
): Model {
  // The sources' trained classes, one set per source (a merged source stores one per head).
  const trained = given ?? storedTasks(models);
  // The merged graph starts from model A's, metadata included: A's own trained classes must not
  // pass for the merge's when another source stores none.
  const sourceMetadata = Object.fromEntries(
    Object.entries(merged.metadata).filter(([key]) => key !== METADATA_KEYS.trainedClasses),
  );
  return {
    ...merged,
    irVersion: validIrVersion(merged),
    producerName: 'zipit-merge',
    metadata: {
      ...sourceMetadata,
      // The preprocessing the statistics were measured with, so that scoring the merged model
      // (e.g. a PyTorch pair merged with --mean/--std) needs no flags.
      ...preprocessingMetadata({
        mean: typeof normalization.mean === 'number' ? [normalization.mean] : normalization.mean,
        std: typeof normalization.std === 'number' ? [normalization.std] : normalization.std,
        inputShape: inputDims,
      }),
      'zipit.method': method,
      'zipit.sources': labels.join(','),
      'zipit.head': how.head,
      'zipit.logits': how.logits,
      'zipit.sources_reset': String(how.sourcesReset),
      ...(how.weightSimilarity > 0
        ? { 'zipit.weight_similarity': String(how.weightSimilarity) }
        : {}),
      // So that scoring needs no --tasks.
      ...(trained ? trainedClassesMetadata(trained) : {}),
    },
  };
}
