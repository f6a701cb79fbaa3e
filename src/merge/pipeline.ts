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
import { analyzeGraph, type AnalyzedGraph } from '../graph/analyze.js';
import { analyzeSpaces, type FeatureSpace, type SpaceAnalysis } from '../graph/spaces.js';
import { matchers, parseMatchOptions, type MatchMethod } from '../match/index.js';
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
import { collectStatistics } from './collect.js';
import {
  correctionKind,
  mergedTargets,
  repairProducers,
  resetBatchNorm,
  sourceTarget,
} from './repair.js';
import { checkMemoryBudget, estimateStatisticsMemory, spaceSizes } from './memory-estimate.js';
import { checkMergedWeightsFinite } from './finite-output.js';
import { buildMultiHead } from './multi-head.js';
import { findStopPoints, resolveStopPoint, type StopPoint } from './stop-points.js';
import { checkSameStructure, type StructureMaps } from './structure.js';
import { transformFromGroups, type SpaceTransform } from './transform.js';

/** How to merge. */
export interface MergeOptions {
  readonly method: MatchMethod;
  readonly match: MatchOptions;
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
  /** Precomputed statistics (e.g. summed shards from `zipit stats`), keyed by {@link statisticsKey}. */
  readonly statistics?: StatisticsSet;
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
  readonly parameters: { readonly alpha: number; readonly beta: number };
  readonly numModels: number;
  readonly spacesMerged: number;
  readonly spaces: readonly SpaceReport[];
  readonly correction: 'batchnorm' | 'repair' | 'none';
  /** Where the trunk ends for partial zipping (absent for a full zip). */
  readonly stopAt?: {
    readonly id: string;
    readonly space: number;
    readonly zipped: number;
    readonly total: number;
  };
  readonly seconds: { statistics: number; matching: number; apply: number; repair: number };
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

/** Bytes of every initializer of the models (what their sessions and copies scale with). */
function weightBytes(models: readonly Model[]): number {
  let bytes = 0;
  for (const model of models)
    for (const tensor of model.graph.initializers.values()) bytes += tensor.data.byteLength;
  return bytes;
}

/** What every merge stage shares: analysed graphs, name maps, the stop point, the spaces to merge, the batches. */
interface Prepared {
  readonly graphs: AnalyzedGraph[];
  readonly spaces: SpaceAnalysis;
  readonly stop: StopPoint | undefined;
  readonly maps: StructureMaps;
  readonly mergeable: FeatureSpace[];
  readonly inputDims: number[];
  readonly pass: Batches;
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
    alpha: options.match.alpha,
    beta: options.match.beta,
  });
  if (!parsed.ok) return parsed;
  for (const [k, model] of models.entries()) {
    const finite = checkFiniteWeights(model);
    if (!finite.ok) return fail(finite.reason, `${labels[k]}: ${finite.message}`);
  }
  const analyzed = analyzeModels(models, labels);
  if (!analyzed.ok) return analyzed;
  const graphs = analyzed.value;
  const spaces = analyzeSpaces(graphs[0]!);
  if (!spaces.ok) return spaces;
  let stop: StopPoint | undefined;
  if (options.stopAt !== undefined || headsDiffer(models)) {
    const points = findStopPoints(graphs[0]!, spaces.value);
    if (options.stopAt !== undefined) {
      const resolved = resolveStopPoint(points, options.stopAt);
      if (!resolved.ok) return resolved;
      stop = resolved.value;
    } else {
      stop = points[points.length - 1];
      if (stop === undefined)
        return fail(
          'unsupported-model',
          'The models score different classes but have no point where one head per model could start.',
        );
    }
  }
  const maps = checkSameStructure(graphs, labels, stop ? stop.position + 1 : undefined);
  if (!maps.ok) return maps;
  const shape = modelImageShape(models[0]!);
  if (shape !== undefined) {
    const fits = checkImageShape(data, shape, labels[0]);
    if (!fits.ok) return fits;
  }
  const position = new Map(graphs[0]!.model.graph.nodes.map((n, i) => [n.name, i]));
  // With a stop point only the trunk's spaces are merged. The cut's space may go on in the heads
  // (a residual stream cut mid-stage): it is measured at the cut, the only point the trunk has.
  const inTrunk = (s: FeatureSpace): boolean =>
    stop === undefined || s.producers.some((p) => (position.get(p) ?? Infinity) <= stop.position);
  const mergeable = spaces.value.spaces
    .filter((s) => s.kind !== 'fixed' && inTrunk(s))
    .map((s) =>
      stop !== undefined && s.id === stop.space
        ? {
            ...s,
            site: { value: stop.value, offset: 0 },
            producerOutputs: s.producerOutputs.filter(
              (v) =>
                (position.get(graphs[0]!.producer.get(v)?.name ?? '') ?? Infinity) <= stop.position,
            ),
          }
        : s,
    );
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
      { method: parsed.value.method, modelBytes: weightBytes(models) },
    );
    const fits = checkMemoryBudget(estimate, models.length, options.memoryLimit);
    if (!fits.ok) return fits;
  }
  if (!pass.ok) return pass;
  return ok({
    graphs,
    spaces: spaces.value,
    stop,
    maps: maps.value,
    mergeable,
    inputDims,
    pass: pass.value,
  });
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
  const { graphs, maps, mergeable, pass, inputDims } = prepared.value;
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
  const { graphs, spaces, stop, maps, mergeable, inputDims, pass } = prepared.value;
  const repair = options.repair ?? true;
  const kind = repair ? correctionKind(graphs[0]!) : 'none';
  // REPAIR needs each source's statistics at every producer it will correct: the merged spaces'
  // producers and, with heads, every weight op after the cut (a head's target is its own source).
  const headProducers =
    stop === undefined
      ? []
      : graphs[0]!.model.graph.nodes
          .slice(stop.position + 1)
          .filter((n) => graphs[0]!.roles.get(n.name) === 'weight')
          .map((n) => n.outputs[0]!);
  const momentValues =
    kind === 'repair' ? [...mergeable.flatMap((s) => s.producerOutputs), ...headProducers] : [];

  const t0 = now();
  const collected = await collectStatistics(graphs, maps.values, mergeable, pass, inputDims, {
    threads: options.threads ?? 2,
    momentValues,
    // Precomputed (summed shard) statistics replace the covariance pass, and weight averaging
    // needs none (it pairs feature i with feature i): a wavg of two 8,000-wide MLPs peaked at
    // 7.1 GB for statistics it never read. REPAIR's source moments still need the sources run.
    ...(options.statistics || options.method === 'wavg' ? { skipCovariance: true } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  if (!collected.ok) return collected;
  const covarianceOf = (space: FeatureSpace): Result<CovarianceAccumulator> => {
    if (options.statistics === undefined) return ok(collected.value.covariance.get(space.id)!);
    const given = options.statistics.get(statisticsKey(space));
    if (given === undefined)
      return fail(
        'bad-statistics',
        `The statistics files have no '${statisticsKey(space)}'; compute them with the same models and --stop-at.`,
      );
    if (given.numModels !== models.length || given.width !== space.width) {
      return fail(
        'bad-statistics',
        `'${statisticsKey(space)}' in the statistics files is for ${given.numModels} models x ${given.width} channels, not ${models.length} x ${space.width}.`,
      );
    }
    return ok(given);
  };
  const t1 = now();

  const transforms = new Map<number, SpaceTransform>();
  const reports: SpaceReport[] = [];
  const correlations = new Map<number, Float64Array>();
  for (const [i, space] of mergeable.entries()) {
    let matching: Result<Matching>;
    if (options.method === 'wavg' && options.statistics === undefined) {
      matching = weightAverageMatching(models.length, space.width, options.match.mergedWidth);
    } else {
      const accumulator = covarianceOf(space);
      if (!accumulator.ok) return accumulator;
      const correlation = finalizeCorrelation(accumulator.value);
      if (!correlation.ok)
        return fail(correlation.reason, `Space ${space.id}: ${correlation.message}`);
      // The accumulator is not needed again: release its (Kn)^2 Gram before matching.
      collected.value.covariance.delete(space.id);
      correlations.set(space.id, correlation.value);
      matching = matchers[options.method](
        correlation.value,
        models.length,
        space.width,
        options.match,
      );
    }
    if (!matching.ok) return fail(matching.reason, `Space ${space.id}: ${matching.message}`);
    transforms.set(
      space.id,
      transformFromGroups(matching.value.groups, models.length, space.width),
    );
    reports.push({
      id: space.id,
      width: space.width,
      kind: space.kind,
      crossModelMerges: matching.value.crossModelMerges,
      sameModelMerges: matching.value.sameModelMerges,
    });
    options.onProgress?.({ phase: 'matching', done: i + 1, total: mergeable.length });
  }
  const t2 = now();

  let merged = applyTransforms(graphs, maps.initializers, spaces, transforms);
  if (stop !== undefined)
    merged = buildMultiHead(
      merged,
      graphs,
      labels,
      maps.values,
      stop,
      transforms.get(stop.space)!.columns,
    );
  const t3 = now();

  if (kind !== 'none') {
    const graph = analyzeGraph(merged);
    if (!graph.ok) return graph;
    if (kind === 'batchnorm') {
      const reset = await resetBatchNorm(graph.value, pass, inputDims, {
        threads: options.threads ?? 2,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      if (!reset.ok) return reset;
      merged = reset.value;
    } else {
      const targets = mergeable.flatMap((s) =>
        mergedTargets(s, transforms.get(s.id)!, collected.value.moments),
      );
      for (const value of headProducers) {
        for (let k = 0; k < models.length; k++) {
          const moments = collected.value.moments[k]!.get(value);
          if (moments !== undefined)
            targets.push(sourceTarget(`h${k}/${maps.values[k]!.get(value) ?? value}`, moments));
        }
      }
      const repaired = await repairProducers(graph.value, targets, pass, inputDims, {
        threads: options.threads ?? 2,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      if (!repaired.ok) return repaired;
      merged = repaired.value.model;
    }
  }
  const t4 = now();
  const finite = checkMergedWeightsFinite(merged, normalization);
  if (!finite.ok) return finite;
  // The sources' trained classes, one set per source, so that scoring needs no --tasks.
  const trained = storedTasks(models);
  // The merged graph starts from model A's, metadata included: A's own trained classes must not
  // pass for the merge's when another source stores none.
  const sourceMetadata = Object.fromEntries(
    Object.entries(merged.metadata).filter(([key]) => key !== METADATA_KEYS.trainedClasses),
  );
  merged = {
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
      'zipit.method': options.method,
      'zipit.sources': labels.join(','),
      ...(trained ? trainedClassesMetadata(trained) : {}),
    },
  };
  return ok({
    model: merged,
    spaces: spaces.spaces,
    correlations,
    report: {
      method: options.method,
      parameters: { alpha: options.match.alpha, beta: options.match.beta },
      numModels: models.length,
      spacesMerged: mergeable.length,
      spaces: reports,
      correction: kind,
      ...(stop
        ? { stopAt: { id: stop.id, space: stop.space, zipped: stop.zipped, total: stop.total } }
        : {}),
      seconds: { statistics: t1 - t0, matching: t2 - t1, apply: t3 - t2, repair: t4 - t3 },
    },
  });
}
