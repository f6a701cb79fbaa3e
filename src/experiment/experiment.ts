/**
 * @file The paper's experiment end to end: train P pairs on seeded random disjoint class splits,
 * choose alpha/beta on a held-out pair, evaluate every baseline and stop point on the others,
 * aggregate mean and std. Resumable: trained models and finished pairs are reused.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readRegularFile } from '../files/regular-file.js';
import { join } from 'node:path';
import { fail, ok, type Result } from '../errors.js';
import { takeBalanced, type Dataset } from '../data/dataset.js';
import { modelScores } from '../eval/evaluate.js';
import { scoreTasks } from '../eval/metrics.js';
import { analyzeGraph } from '../graph/analyze.js';
import { analyzeSpaces } from '../graph/spaces.js';
import { mergeModels } from '../merge/pipeline.js';
import { findStopPoints } from '../merge/stop-points.js';
import { readModelFile, writeFileAtomic, writeModelFile } from '../onnx/files.js';
import type { Model } from '../onnx/model.js';
import { storedPreprocessing } from '../onnx/preprocessing.js';
import type { ProgressListener } from '../progress.js';
import type { ReportRow, ReportStd } from '../report/types.js';
import { Random } from '../tensor/random.js';
import {
  DEFAULT_WEIGHT_DECAY,
  UNRECORDED_LEARNING_RATE,
  recipeMetadata,
  trainModel,
} from '../train/trainer.js';
import type { Architecture } from '../zoo/architectures.js';
import { resetSources as resetSourceModels } from '../merge/source-reset.js';
import type { HeadRule } from '../merge/class-head.js';
import type { LogitRule } from '../merge/logits.js';
import { compareMethods, type MethodSpec } from './compare.js';

/** What to run. */
export interface ExperimentOptions {
  readonly arch: Architecture;
  readonly width: number;
  readonly pairs: number;
  readonly epochs: number;
  readonly train: Dataset;
  readonly test: Dataset;
  readonly out: string;
  /** Merge images per merge (default 5000), drawn evenly from all classes of the pair. */
  readonly samples?: number;
  /** Base seed: pair p uses split seed seed+p and model seeds 2p+1+seed, 2p+2+seed. */
  readonly seed?: number;
  readonly alphas?: readonly number[];
  readonly betas?: readonly number[];
  readonly threads?: number;
  /** How full merges build the classifier (default 'average', the paper's; or class-aware). */
  readonly head?: HeadRule;
  /** Reset the sources' BatchNorm statistics on each pair's merge data first (default false). */
  readonly resetSources?: boolean;
  /** Full merges' logits (default 'raw'). */
  readonly logits?: LogitRule;
  readonly onProgress?: ProgressListener;
  /** Called with one line when a step finishes (training done, alpha/beta chosen, pair evaluated). */
  readonly onNote?: (line: string) => void;
}

/** One evaluated pair. */
export interface PairResult {
  readonly pair: number;
  readonly tasks: number[][];
  readonly seeds: [number, number];
  readonly rows: ReportRow[];
}

/** Everything `results.json` holds. */
export interface ExperimentResults {
  readonly arch: Architecture;
  readonly width: number;
  readonly epochs: number;
  readonly samples: number;
  /** The full merges' classifier rule (absent in runs made before the rule existed: 'average'). */
  readonly head?: HeadRule;
  /** Whether the sources' BatchNorm statistics were reset first (absent in older runs: false). */
  readonly resetSources?: boolean;
  /** Full merges' logit rule (absent in older runs: 'raw'). */
  readonly logits?: LogitRule;
  readonly chosen: {
    readonly alpha: number;
    readonly beta: number;
    readonly heldOutJoint: number;
    readonly grid: { alpha: number; beta: number; joint: number }[];
  };
  readonly pairs: PairResult[];
  /** Mean over the evaluated pairs, with std, in table order. */
  readonly summary: ReportRow[];
}

/** A seeded random split of the label space into two disjoint halves. */
export function randomSplit(numClasses: number, seed: number): number[][] {
  const order = Array.from(new Random(seed).permutation(numClasses));
  const half = Math.floor(numClasses / 2);
  return [order.slice(0, half).sort((a, b) => a - b), order.slice(half).sort((a, b) => a - b)];
}

/** A JSON file this run may resume from: undefined when absent, not a regular file, or damaged. */
function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  // A checked read: a FIFO left where results.json should be must not hang the run.
  const bytes = readRegularFile(path, 'results file', 64 * 2 ** 20);
  if (!bytes.ok) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes.value)) as T;
  } catch {
    return undefined;
  }
}

/**
 * How a model's recorded training differs from what this run would train (undefined: it does
 * not): the architecture, seed, classes, epochs and recipe, each as `key value` lists.
 */
export function recipeDifferences(
  recorded: Readonly<Record<string, string>>,
  options: Pick<ExperimentOptions, 'arch' | 'width' | 'epochs'>,
  classes: readonly number[],
  seed: number,
): { was: string; now: string } | undefined {
  // What trainModel would record for this run's model (its default recipe); a model recorded
  // otherwise is not reused. Label smoothing is recorded only when on, so 0 is asked for here.
  const wanted: Record<string, string> = {
    'zipit.arch': options.arch,
    'zipit.width': String(options.width),
    'zipit.seed': String(seed),
    'zipit.label_smoothing': '0',
    ...recipeMetadata({ arch: options.arch, classes, epochs: options.epochs }),
  };
  // Models trained before these keys existed were trained with these values.
  const metadata: Record<string, string> = {
    'zipit.lr': String(UNRECORDED_LEARNING_RATE),
    'zipit.weight_decay': String(DEFAULT_WEIGHT_DECAY),
    'zipit.label_smoothing': '0',
    ...recorded,
  };
  const differing = Object.entries(wanted).filter(([key, value]) => metadata[key] !== value);
  if (differing.length === 0) return undefined;
  return {
    was: differing.map(([key]) => `${key.slice(6)} ${metadata[key] ?? '(none)'}`).join(', '),
    now: differing.map(([key, value]) => `${key.slice(6)} ${value}`).join(', '),
  };
}

/**
 * Trains one model of a pair, or reuses the file a previous run left at `path` when it was
 * trained with this run's settings. A file trained otherwise is an error, not retrained: it
 * may be hours of someone's work, and the results beside it belong to it.
 */
async function trainedModel(
  options: ExperimentOptions,
  path: string,
  classes: number[],
  seed: number,
): Promise<Result<Model>> {
  if (existsSync(path)) {
    const existing = readModelFile(path);
    if (!existing.ok)
      return fail(
        existing.reason,
        `${path} is not a readable model (${existing.message}); delete it to retrain.`,
      );
    const differing = recipeDifferences(existing.value.metadata, options, classes, seed);
    if (differing === undefined) return existing;
    return fail(
      'bad-argument',
      `${path} was trained with ${differing.was}, but this run asks for ${differing.now}: pass another --out, or delete the folder to start over.`,
    );
  }
  const trained = await trainModel(options.train, {
    arch: options.arch,
    width: options.width,
    seed,
    classes,
    epochs: options.epochs,
    threads: options.threads ?? 2,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  if (!trained.ok) return trained;
  const written = writeModelFile(path, trained.value.model);
  if (!written.ok) return written;
  options.onNote?.(
    `trained ${path} (${trained.value.summary.seconds.toFixed(0)} s, ${trained.value.summary.imagesPerSecond.toFixed(0)} images/s)`,
  );
  // Go on with the file as written (float attributes rounded to float32, as a resumed run
  // reads them), so a fresh run and a resumed one evaluate the same models.
  return readModelFile(path);
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function std(values: readonly number[]): number {
  const m = mean(values);
  return Math.sqrt(mean(values.map((v) => (v - m) ** 2)));
}

/** Mean and std over pairs of rows with the same method, in the first pair's order. */
export function summarize(pairs: readonly PairResult[]): ReportRow[] {
  const methods = pairs[0]?.rows.map((r) => r.method) ?? [];
  return methods.map((method) => {
    const rows = pairs
      .map((p) => p.rows.find((r) => r.method === method)!)
      .filter((r) => r !== undefined);
    const tasks = rows[0]!.tasks.map((_, t) => rows.map((r) => r.tasks[t]!));
    const spread: ReportStd = {
      joint: std(rows.map((r) => r.joint)),
      tasks: tasks.map(std),
      avg: std(rows.map((r) => r.avg)),
    };
    return {
      method,
      joint: mean(rows.map((r) => r.joint)),
      tasks: tasks.map(mean),
      avg: mean(rows.map((r) => r.avg)),
      flops: mean(rows.map((r) => r.flops)),
      ...(rows[0]!.params ? { params: rows[0]!.params } : {}),
      std: spread,
    };
  });
}

/**
 * The held-out pair's grid when none is given: the reference's (alpha 0.3-1 x beta 0.125-1).
 * The previous default stopped beta at 0.5, and the ResNet-20 x1 run chose beta 1.0
 * (docs/RESULTS.md), so the default must reach beta's upper bound.
 */
export const DEFAULT_ALPHA_GRID: readonly number[] = [0.3, 0.5, 0.7, 1];
export const DEFAULT_BETA_GRID: readonly number[] = [0.125, 0.25, 0.5, 1];

/** Runs (or resumes) the experiment and writes results.json into `options.out`. */
export async function runExperiment(
  options: ExperimentOptions,
): Promise<Result<ExperimentResults>> {
  if (!Number.isInteger(options.pairs) || options.pairs < 2)
    return fail(
      'bad-argument',
      `Expected --pairs to be an integer >= 2 (one is held out to choose alpha/beta), got ${options.pairs}`,
    );
  mkdirSync(options.out, { recursive: true });
  const seed = options.seed ?? 0;
  const samples = options.samples ?? 5000;
  const models: { tasks: number[][]; seeds: [number, number]; pair: Model[] }[] = [];
  for (let p = 0; p < options.pairs; p++) {
    const tasks = randomSplit(options.train.numClasses, seed + 1000 + p);
    const seeds: [number, number] = [seed + 2 * p + 1, seed + 2 * p + 2];
    const dir = join(options.out, `pair-${p}`);
    mkdirSync(dir, { recursive: true });
    const a = await trainedModel(options, join(dir, 'a.onnx'), tasks[0]!, seeds[0]);
    if (!a.ok) return a;
    const b = await trainedModel(options, join(dir, 'b.onnx'), tasks[1]!, seeds[1]);
    if (!b.ok) return b;
    models.push({ tasks, seeds, pair: [a.value, b.value] });
  }
  const preprocessing = storedPreprocessing(models[0]!.pair[0]!);
  if (preprocessing === undefined)
    return fail('unsupported-model', 'The trained models carry no preprocessing metadata.');
  const normalization = { mean: preprocessing.mean, std: preprocessing.std };
  const mergeDataOf = (tasks: number[][]): Result<Dataset> =>
    takeBalanced(options.train, tasks.flat(), Math.min(samples, options.train.count), seed);

  // Hold out pair 0 to choose alpha/beta by the joint accuracy of the full zip.
  const cachePath = join(options.out, 'results.json');
  const cached = readJson<ExperimentResults>(cachePath);
  const alphas = options.alphas ?? DEFAULT_ALPHA_GRID;
  const betas = options.betas ?? DEFAULT_BETA_GRID;
  const head = options.head ?? 'average';
  const cachedHead = cached?.head ?? 'average';
  const resetSources = options.resetSources ?? false;
  const cachedReset = cached?.resetSources ?? false;
  const logits = options.logits ?? 'raw';
  const cachedLogits = cached?.logits ?? 'raw';
  if (
    cached !== undefined &&
    (cached.arch !== options.arch ||
      cached.width !== options.width ||
      cached.epochs !== options.epochs ||
      cached.samples !== samples ||
      cachedHead !== head ||
      cachedReset !== resetSources ||
      cachedLogits !== logits)
  ) {
    const hints = [
      ...(cachedHead !== head ? [`--head ${cachedHead}`] : []),
      ...(cachedReset !== resetSources
        ? [cachedReset ? '--reset-sources' : '--no-reset-sources']
        : []),
      ...(cachedLogits !== logits ? [`--logits ${cachedLogits}`] : []),
    ];
    return fail(
      'bad-argument',
      `${cachePath} holds a run of ${cached.arch} x${cached.width}, ${cached.epochs} epochs, ${cached.samples} merge images, ${cachedHead} head, sources ${cachedReset ? 'reset' : 'kept'}, ${cachedLogits} logits, not this one: pass another --out${hints.length > 0 ? ` or ${hints.join(' ')}` : ''}.`,
    );
  }
  let chosen = cached?.chosen;
  // The cached choice stands only if it was made over exactly this grid.
  const sameGrid =
    chosen !== undefined &&
    chosen.grid.length === alphas.length * betas.length &&
    alphas.every((alpha) =>
      betas.every((beta) => chosen!.grid.some((g) => g.alpha === alpha && g.beta === beta)),
    );
  const results: PairResult[] = [];
  const snapshot = (): ExperimentResults => ({
    arch: options.arch,
    width: options.width,
    epochs: options.epochs,
    samples,
    head,
    resetSources,
    logits,
    chosen: chosen!,
    pairs: results,
    summary: summarize(results),
  });
  const save = (): Result<void> =>
    writeFileAtomic(cachePath, `${JSON.stringify(snapshot(), null, 2)}\n`);
  if (!sameGrid) {
    const held = models[0]!;
    const data = mergeDataOf(held.tasks);
    if (!data.ok) return data;
    // Reset once for the whole grid: the reset does not depend on alpha and beta.
    const sources = resetSources
      ? await resetSourceModels(held.pair, ['a.onnx', 'b.onnx'], data.value, normalization, {
          threads: options.threads ?? 2,
        })
      : ok(held.pair);
    if (!sources.ok) return sources;
    const grid: { alpha: number; beta: number; joint: number }[] = [];
    for (const alpha of alphas) {
      for (const beta of betas) {
        const merged = await mergeModels(
          sources.value,
          ['a.onnx', 'b.onnx'],
          data.value,
          normalization,
          {
            method: 'zipit',
            match: { alpha, beta },
            trainedClasses: held.tasks,
            head,
            logits,
            ...(resetSources ? { resetSources: 'already' as const } : {}),
            threads: options.threads ?? 2,
          },
        );
        if (!merged.ok) return merged;
        const scores = await modelScores(
          { model: merged.value.model, label: 'held-out', ...normalization },
          options.test,
          { threads: options.threads ?? 2 },
        );
        if (!scores.ok) return scores;
        grid.push({
          alpha,
          beta,
          joint: scoreTasks(scores.value, options.test.labels, held.tasks).joint,
        });
        options.onProgress?.({
          phase: 'alpha/beta',
          done: grid.length,
          total: alphas.length * betas.length,
        });
      }
    }
    const best = grid.reduce((a, b) => (b.joint > a.joint ? b : a));
    chosen = { alpha: best.alpha, beta: best.beta, heldOutJoint: best.joint, grid };
    options.onNote?.(
      `held-out pair 0: alpha ${best.alpha}, beta ${best.beta} (joint ${(100 * best.joint).toFixed(1)}%)`,
    );
    // The grid is many merges: keep its choice even if a pair fails later.
    const savedChoice = save();
    if (!savedChoice.ok) return savedChoice;
  }
  const methods: MethodSpec[] = [
    { name: 'W.Avg', method: 'wavg', alpha: 0, beta: 0 },
    { name: 'Permute', method: 'permute', alpha: 0, beta: 0 },
    { name: 'ZipIt!', method: 'zipit', alpha: chosen!.alpha, beta: chosen!.beta },
  ];
  const graph = analyzeGraph(models[0]!.pair[0]!);
  if (!graph.ok) return graph;
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) return spaces;
  const stopPoints = findStopPoints(graph.value, spaces.value).map((p) => p.id);
  for (let p = 1; p < options.pairs; p++) {
    const reuse = sameGrid
      ? cached?.pairs.find(
          (r) => r.pair === p && r.rows.length === methods.length + stopPoints.length + 3,
        )
      : undefined;
    if (reuse !== undefined) {
      results.push(reuse);
      continue;
    }
    const { tasks, seeds, pair } = models[p]!;
    const data = mergeDataOf(tasks);
    if (!data.ok) return data;
    const compared = await compareMethods({
      models: pair,
      labels: ['a.onnx', 'b.onnx'],
      tasks,
      mergeData: data.value,
      testData: options.test,
      normalization,
      methods,
      stopPoints,
      head,
      resetSources,
      logits,
      threads: options.threads ?? 2,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (!compared.ok) return fail(compared.reason, `pair ${p}: ${compared.message}`);
    results.push({ pair: p, tasks, seeds, rows: compared.value.rows });
    options.onNote?.(`pair ${p} evaluated`);
    // Save after every pair so an interrupted run resumes here.
    const saved = save();
    if (!saved.ok) return saved;
  }
  const saved = save();
  return saved.ok ? ok(snapshot()) : saved;
}

/** The summary as a Markdown table in the paper's Table 1 form (mean ± std over pairs). */
export function markdownTable(results: ExperimentResults): string {
  const cell = (value: number, spread: number): string =>
    `${(100 * value).toFixed(1)} ± ${(100 * spread).toFixed(1)}`;
  const lines = [
    `${results.arch} x${results.width}, ${results.epochs} epochs, ${results.pairs.length} evaluated pairs (mean ± std), ZipIt! alpha ${results.chosen.alpha}, beta ${results.chosen.beta} (chosen on held-out pair 0), ${results.samples} merge images.`,
    '',
    '| Method | Joint | Task A | Task B | Avg | FLOPs (MACs) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...results.summary.map(
      (r) =>
        `| ${r.method} | ${cell(r.joint, r.std?.joint ?? 0)} | ${cell(r.tasks[0] ?? 0, r.std?.tasks[0] ?? 0)} | ${cell(r.tasks[1] ?? 0, r.std?.tasks[1] ?? 0)} | ${cell(r.avg, r.std?.avg ?? 0)} | ${(r.flops / 1e6).toFixed(1)}M |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
