/** @file Compares every baseline on one set of K source models: each model, W.Avg, Permute, ZipIt!, the Ensemble. */
import { fail, ok, type Result } from '../errors.js';
import type { Dataset, Normalization } from '../data/dataset.js';
import { checkHeadsMatchTasks, modelScores } from '../eval/evaluate.js';
import { scoreTasks, type ScoreSource } from '../eval/metrics.js';
import { analyzeGraph } from '../graph/analyze.js';
import { countMacs } from '../graph/flops.js';
import { DEFAULT_MATCH_OPTIONS, type MatchMethod } from '../match/index.js';
import type { HeadRule } from '../merge/class-head.js';
import type { LogitRule } from '../merge/logits.js';
import { mergeModels, type HeadOrderRule, type MergeResult } from '../merge/pipeline.js';
import { resetSources } from '../merge/source-reset.js';
import { checkStopPoints } from '../merge/stop-points.js';
import type { Model } from '../onnx/model.js';
import type { ProgressListener } from '../progress.js';
import type { CurvePoint, ReportRow } from '../report/types.js';

/** One merge to run: a display name, the method and its alpha/beta. */
export interface MethodSpec {
  readonly name: string;
  readonly method: MatchMethod;
  readonly alpha: number;
  readonly beta: number;
  /** Partial zipping: merge only up to this stop point (id), one head per model after it. */
  readonly stopAt?: string;
  /** Dual-space matching's share of weight similarity (MergeOptions.weightSimilarity). */
  readonly weightSimilarity?: number;
}

/**
 * The paper's baselines in table order, with the reference's default alpha/beta for ZipIt!, and
 * weight matching (Git Re-Basin) beside Permute: it needs no statistics pass for its matching.
 */
export const DEFAULT_METHODS: readonly MethodSpec[] = [
  { name: 'W.Avg', method: 'wavg', alpha: 0, beta: 0 },
  { name: 'Permute', method: 'permute', alpha: 0, beta: 0 },
  { name: 'Weights', method: 'weights', alpha: 0, beta: 0 },
  {
    name: 'ZipIt!',
    method: 'zipit',
    alpha: DEFAULT_MATCH_OPTIONS.alpha,
    beta: DEFAULT_MATCH_OPTIONS.beta,
  },
];

/** Inputs of a comparison. */
export interface CompareInput {
  readonly models: readonly Model[];
  readonly labels: readonly string[];
  readonly tasks: readonly (readonly number[])[];
  readonly mergeData: Dataset;
  readonly testData: Dataset;
  readonly normalization: Normalization & { mean: readonly number[]; std: readonly number[] };
  readonly methods?: readonly MethodSpec[];
  readonly repair?: boolean;
  readonly threads?: number;
  /** Batch size of the merges' statistics passes (default 128). */
  readonly batchSize?: number;
  /** Refuse merges whose statistics would need more bytes than this. */
  readonly memoryLimit?: number;
  readonly onProgress?: ProgressListener;
  /** Partial zipping with ZipIt! (the last method's alpha/beta) at these stop points (ids). */
  readonly stopPoints?: readonly string[];
  /** How full merges build the classifier (default 'average', the paper's; class-aware reads `tasks` as the trained classes). */
  readonly head?: HeadRule;
  /**
   * Reset the sources' BatchNorm statistics on the merge data once, then score them, their
   * ensemble and every merge from the reset sources (the reference's procedure).
   */
  readonly resetSources?: boolean;
  /** The merged logits (default 'raw'): standardised or raw, every head of a partial zip too. */
  readonly logits?: LogitRule;
  /** Attention heads matched to heads (default) or kept in place (MergeOptions.heads). */
  readonly heads?: HeadOrderRule;
}

/** The table rows and the merges behind them (by method name). */
export interface CompareOutput {
  readonly rows: ReportRow[];
  readonly merges: ReadonlyMap<string, MergeResult>;
  /** The partial-zipping rows as curve points (empty without stop points). */
  readonly curve: CurvePoint[];
}

function macsOf(model: Model): number {
  const graph = analyzeGraph(model);
  return graph.ok ? countMacs(graph.value) : 0;
}

/** Runs every merge and scores every row on the test data. */
export async function compareMethods(input: CompareInput): Promise<Result<CompareOutput>> {
  const { mean, std } = input.normalization;
  const threads = input.threads ?? 2;
  const score = async (model: Model, label: string): Promise<Result<ScoreSource[]>> =>
    modelScores({ model, label, mean, std }, input.testData, { threads });
  const row = (
    method: string,
    sources: ScoreSource[],
    flops: number,
    params?: string,
  ): ReportRow => {
    const accuracy = scoreTasks(sources, input.testData.labels, input.tasks);
    return {
      method,
      joint: accuracy.joint,
      tasks: accuracy.tasks,
      avg: accuracy.avg,
      flops,
      ...(params ? { params } : {}),
    };
  };
  // The ensemble and multi-head rows score head k for task k: one task per model.
  const heads = checkHeadsMatchTasks(
    input.models.length,
    input.tasks,
    `The comparison of ${input.models.length} models`,
  );
  if (!heads.ok) return heads;
  // A bad stop point fails now, not after the sources were scored and the first merges ran.
  const stops = checkStopPoints(input.models[0]!, [
    ...(input.methods ?? DEFAULT_METHODS).flatMap((m) =>
      m.stopAt !== undefined ? [m.stopAt] : [],
    ),
    ...(input.stopPoints ?? []),
  ]);
  if (!stops.ok) return stops;
  const rows: ReportRow[] = [];
  const sourceScores: ScoreSource[][] = [];
  const models = input.resetSources
    ? await resetSources(input.models, input.labels, input.mergeData, input.normalization, {
        threads,
        ...(input.batchSize !== undefined ? { batchSize: input.batchSize } : {}),
        ...(input.onProgress ? { onProgress: input.onProgress } : {}),
      })
    : ok(input.models);
  if (!models.ok) return models;
  for (const [k, model] of models.value.entries()) {
    const scores = await score(model, input.labels[k]!);
    if (!scores.ok) return scores;
    sourceScores.push(scores.value);
    rows.push(row(`Model ${String.fromCharCode(65 + k)}`, scores.value, macsOf(model)));
    input.onProgress?.({ phase: 'evaluate', done: k + 1, total: input.models.length });
  }
  const merges = new Map<string, MergeResult>();
  const methods = input.methods ?? DEFAULT_METHODS;
  const zip = [...methods].reverse().find((m) => m.method === 'zipit');
  const runs: { spec: MethodSpec; stopAt?: string }[] = [
    ...methods.map((spec) =>
      spec.stopAt !== undefined ? { spec, stopAt: spec.stopAt } : { spec },
    ),
    ...(zip ? (input.stopPoints ?? []).map((stopAt) => ({ spec: zip, stopAt })) : []),
  ];
  const curve: CurvePoint[] = [];
  for (const { spec, stopAt } of runs) {
    const merged = await mergeModels(
      models.value,
      input.labels,
      input.mergeData,
      input.normalization,
      {
        method: spec.method,
        match: { alpha: spec.alpha, beta: spec.beta },
        ...(spec.weightSimilarity !== undefined ? { weightSimilarity: spec.weightSimilarity } : {}),
        repair: input.repair ?? true,
        // One task per model (checked above): model k was trained on tasks[k].
        trainedClasses: input.tasks,
        head: input.head ?? 'average',
        logits: input.logits ?? 'raw',
        ...(input.heads !== undefined ? { heads: input.heads } : {}),
        // Reset above, once for every merge.
        ...(input.resetSources === true ? { resetSources: 'already' as const } : {}),
        threads,
        ...(input.batchSize !== undefined ? { batchSize: input.batchSize } : {}),
        ...(input.memoryLimit !== undefined ? { memoryLimit: input.memoryLimit } : {}),
        ...(stopAt !== undefined ? { stopAt } : {}),
        ...(input.onProgress ? { onProgress: input.onProgress } : {}),
      },
    );
    if (!merged.ok) {
      const which = stopAt !== undefined ? `${spec.name} stopped at ${stopAt}` : spec.name;
      return fail(merged.reason, `${which}: ${merged.message}`);
    }
    const at = merged.value.report.stopAt;
    // The paper's naming: ZipIt!a/b zips a of b weight layers.
    const name = at ? `${spec.name}${at.zipped}/${at.total}` : spec.name;
    merges.set(name, merged.value);
    const scores = await score(merged.value.model, name);
    if (!scores.ok) return scores;
    const params = spec.method === 'zipit' ? `alpha ${spec.alpha}, beta ${spec.beta}` : undefined;
    const result = row(name, scores.value, macsOf(merged.value.model), params);
    rows.push(result);
    if (at)
      curve.push({
        label: `${at.zipped}/${at.total}`,
        zipped: at.zipped,
        total: at.total,
        joint: result.joint,
        avg: result.avg,
        flops: result.flops,
      });
  }
  const ensembleMacs = models.value.reduce((sum, m) => sum + macsOf(m), 0);
  rows.push(row('Ensemble', sourceScores.flat(), ensembleMacs));
  return ok({ rows, merges, curve });
}
