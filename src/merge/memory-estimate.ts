/** @file Estimates the memory the merge statistics need, so a merge too big for the machine is refused up front. */
import { fail, ok, type Result } from '../errors.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace } from '../graph/spaces.js';
import { staticSize } from '../graph/value-state.js';
import type { MatchMethod } from '../match/index.js';

/** What the estimate needs to know about one mergeable space. */
export interface SpaceSize {
  readonly id: number;
  /** Channels per model, n. */
  readonly width: number;
  /** Positions per sample at the space's measurement site (h * w of a map, 1 after a flatten). */
  readonly positionsPerSample: number;
}

/**
 * Bytes per part of a merge (see {@link estimateStatisticsMemory}). The parts are not all live
 * at once: `total` is the peak over the phases, not their sum.
 */
export interface MemoryEstimate {
  /** Streaming accumulators of every space, held for the whole pass: 8 ((Kn)^2 + 2Kn) each. */
  readonly accumulators: number;
  /** The correlation matrices kept for the report after matching: 8 (Kn)^2 each. */
  readonly correlations: number;
  /** The largest transient buffer set: one batch's Gram copies, or one finalize's matrices. */
  readonly transient: number;
  /** The largest matcher working set: ZipIt!'s similarity copy and heaps, Permute's cost matrix. */
  readonly matcher: number;
  /** One batch's captured activations of all K models: 4 K batch Σ n * positions. */
  readonly activations: number;
  /** The process without statistics: Node and onnxruntime, the models and their sessions. */
  readonly models: number;
  /** The estimated peak: `models` plus the largest phase (pass, a finalize or a matching). */
  readonly total: number;
  /** The widest space (it dominates the quadratic terms), or undefined without spaces. */
  readonly largestSpace?: { readonly id: number; readonly width: number };
}

/** What besides the spaces decides a merge's memory. */
export interface MemoryEstimateOptions {
  /** The matching method: wavg and weights need no statistics, ZipIt! the largest working set. */
  readonly method?: MatchMethod;
  /** Bytes of the K models' initializers (0 when unknown). */
  readonly modelBytes?: number;
  /** Whether ZipIt!/Permute mix weight similarity in (dual-space.ts): two more (Kn)^2 per space. */
  readonly weightSimilarity?: boolean;
}

/**
 * NOTE: measured with /usr/bin/time on wavg merges of two 784-n-10 MLPs, which need no
 * statistics: 312 MB peak at n = 4,000 (25 MB of weights), 431 MB at n = 8,000 (51 MB), i.e.
 * about 193 MB for Node and onnxruntime plus 4.7 times the weights (JS copies, one session per
 * model, the fused session, the merged model). 5x rounds up.
 */
const RUNTIME_BYTES = 190e6;
const BYTES_PER_WEIGHT_BYTE = 5;

/**
 * ZipIt!'s matcher working set for Kn = `total` features (match/zip.ts): a symmetric float64
 * copy of the correlation, and RowHeaps holding each row's partners above the diagonal with a
 * quarter of slack, a float64 key and an int32 partner each.
 */
function zipMatcherBytes(total: number): number {
  let heapEntries = 0;
  for (let g = 0; g < total; g++) {
    const partnersAbove = total - 1 - g;
    heapEntries += partnersAbove + Math.max(8, Math.ceil(partnersAbove / 4));
  }
  return 8 * total * total + 12 * heapEntries;
}

/**
 * The sizes {@link estimateStatisticsMemory} needs, read from an analysed graph: each space's
 * width and the positions per sample at its site (unknown spatial dims count as 1).
 */
export function spaceSizes(graph: AnalyzedGraph, spaces: readonly FeatureSpace[]): SpaceSize[] {
  return spaces
    .filter((s) => s.kind !== 'fixed' && s.site !== undefined)
    .map((s) => {
      const shape = graph.states.get(s.site!.value)?.shape ?? [];
      // [N, C, h, w]: positions h*w; [N, C]: 1. MatMul sites put channels last: [N, T, C] -> T.
      const spatial = shape.length > 2 ? shape.slice(2) : [];
      return { id: s.id, width: s.width, positionsPerSample: staticSize(spatial) ?? 1 };
    });
}

/** A matcher's working set for one space of width n: ZipIt!'s, or Permute's n x n cost matrix. */
function matcherBytes(
  method: 'zipit' | 'permute' | 'cca',
  numModels: number,
  width: number,
): number {
  if (method === 'zipit') return zipMatcherBytes(numModels * width);
  // CCA (cca.ts): about ten n x n float64 matrices, and per model two dense maps of n^2
  // entries (4 + 4 + 8 bytes each).
  if (method === 'cca') return 80 * width * width + 32 * numModels * width * width;
  return 8 * width * width;
}

/**
 * Weight matching's working set (merge/weight-matching.ts) at the widest space n: the n x n
 * float64 similarity and cost, and for one weight at a time its two float64 slice copies and a
 * float32 gathered copy, 24 bytes per element, bounded by one model's weights
 * (`modelBytes / K`, 4 bytes per element).
 */
function weightMatcherBytes(numModels: number, width: number, modelBytes: number): number {
  return 16 * width * width + 6 * (modelBytes / numModels);
}

/**
 * Estimates the peak memory (bytes) of merging K models over `spaces` (ALGORITHM.md
 * "Statistics"), phase by phase as merge/pipeline.ts allocates:
 * - the statistics pass: every space's K-stacked accumulators of Kn features (float64 Gram
 *   matrix, sum and shift), the largest batch transient (onnxruntime's float32 Gram, its float32
 *   copy and its float64 conversion) and one batch of captured activations;
 * - finalizing space s: the accumulators not yet released (s and later), the correlations kept
 *   so far, and s's float64 covariance and correlation;
 * - matching space s: the accumulators after s, the correlations up to s, the matcher's own
 *   working set (ZipIt!: {@link zipMatcherBytes}; Permute: an n x n float64 cost matrix; CCA: its
 *   n x n matrices and dense maps).
 * Weight averaging and weight matching read no statistics, so they have none of these; weight
 * matching's own working set ({@link weightMatcherBytes}) comes after the sources' pass. `models` (Node, onnxruntime,
 * the models and sessions) is added to the largest phase.
 *
 * Checked against peaks measured with /usr/bin/time on two 784-n-10 MLPs (the table in
 * test/robustness/memory-estimate.test.ts): within 10% for zipit, permute and wavg at n = 4,000
 * and 8,000 (zipit n = 8,000: 8.6 GB measured; wavg: 0.43 GB, 7.1 GB before it skipped the
 * statistics it never reads).
 */
export function estimateStatisticsMemory(
  numModels: number,
  spaces: readonly SpaceSize[],
  batchSize: number,
  options: MemoryEstimateOptions = {},
): MemoryEstimate {
  const method = options.method ?? 'zipit';
  const models =
    options.modelBytes === undefined
      ? 0
      : RUNTIME_BYTES + BYTES_PER_WEIGHT_BYTE * options.modelBytes;
  let accumulators = 0;
  let correlations = 0;
  let transient = 0;
  let matcher = 0;
  let activations = 0;
  let largest: { id: number; width: number } | undefined;
  for (const space of spaces) {
    activations += 4 * numModels * batchSize * space.width * space.positionsPerSample;
    if (largest === undefined || space.width > largest.width)
      largest = { id: space.id, width: space.width };
  }
  if (method === 'wavg' || method === 'weights') {
    if (method === 'weights' && largest !== undefined)
      matcher = weightMatcherBytes(numModels, largest.width, options.modelBytes ?? 0);
    return {
      accumulators,
      correlations,
      transient,
      matcher,
      activations,
      models,
      total: models + Math.max(activations, matcher),
      ...(largest ? { largestSpace: largest } : {}),
    };
  }
  const accumulatorOf = (s: SpaceSize): number => {
    const features = numModels * s.width; // Kn
    return 8 * (features * features + 2 * features);
  };
  const squareOf = (s: SpaceSize): number => (numModels * s.width) ** 2;
  for (const space of spaces) {
    const square = squareOf(space);
    accumulators += accumulatorOf(space);
    correlations += 8 * square;
    // Gram: 4 (onnxruntime output) + 4 (assembled copy) + 8 (float64 for the accumulator);
    // finalize: 8 (covariance) + 8 (correlation). The larger of the two is live at a time.
    transient = Math.max(transient, 16 * square);
    matcher = Math.max(matcher, matcherBytes(method, numModels, space.width));
  }
  let peak = accumulators + transient + activations;
  let heldAccumulators = accumulators;
  let keptCorrelations = 0;
  for (const space of spaces) {
    const square = squareOf(space);
    peak = Math.max(peak, heldAccumulators + keptCorrelations + 16 * square);
    heldAccumulators -= accumulatorOf(space);
    keptCorrelations += 8 * square;
    // NOTE: + 8 (Kn)^2: the accumulator and covariance just released are ArrayBuffers that V8
    // frees at its next major GC, not at once; measured, about one of them is still resident
    // when the matcher allocates (n = 8,000 zipit: 8.6 GB peak, 6.6 GB without this term).
    peak = Math.max(
      peak,
      heldAccumulators +
        keptCorrelations +
        8 * square +
        matcherBytes(method, numModels, space.width),
    );
  }
  if (options.weightSimilarity === true && (method === 'zipit' || method === 'permute')) {
    // Dual-space matching (pipeline.ts) finalizes every correlation first and keeps them all;
    // it holds the weight similarities of the spaces built so far while it builds the next one
    // (a Gram and its cosine), then turns each into a mixed matrix as it releases it; the
    // matching then reads the mixed matrices with every correlation still kept for the report.
    let all = 0;
    let widest = 0;
    for (const space of spaces) {
      all += 8 * squareOf(space);
      widest = Math.max(widest, 8 * squareOf(space));
    }
    peak = Math.max(peak, 2 * all + Math.max(widest, matcher));
  }
  return {
    accumulators,
    correlations,
    transient,
    matcher,
    activations,
    models,
    total: models + (spaces.length === 0 ? 0 : peak),
    ...(largest ? { largestSpace: largest } : {}),
  };
}

/** What {@link defaultMemoryLimit} reads from the machine, in bytes. */
export interface MachineMemory {
  /** Physical RAM. */
  readonly total: number;
  /** Memory available now without swapping (Linux's MemAvailable). */
  readonly available: number;
  /** The process's cgroup limit, or undefined when unconstrained. */
  readonly constrained?: number;
}

/**
 * The default memory limit of a merge: 80% of the smallest of RAM, the memory available now and
 * the cgroup limit. 80% of RAM alone let a merge estimated at 8.2 GB start on a machine whose
 * other programs (or container limit) left 6 GB, which then swapped or was OOM-killed; taking
 * every free byte would starve everything else. The 20% kept back also covers the estimate's
 * error (measured within 15% of the real peak).
 */
export function defaultMemoryLimit(machine: MachineMemory): number {
  const bound = Math.min(
    machine.total,
    machine.available,
    machine.constrained !== undefined && machine.constrained > 0 ? machine.constrained : Infinity,
  );
  return 0.8 * bound;
}

/** Bytes as text for messages: 1.5 GB, 12.0 MB, 640 KB. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} KB`;
}

/**
 * Refuses an estimate above `availableBytes` with an 'out-of-memory' Failure that names what
 * reduces the largest part: `--batch` when one batch's activations dominate, fewer models when
 * the models themselves do, otherwise `--stop-at` (fewer spaces zipped) since the quadratic
 * terms grow with K^2 n^2, or wavg, which has none.
 */
export function checkMemoryBudget(
  estimate: MemoryEstimate,
  numModels: number,
  availableBytes: number,
): Result<void> {
  if (estimate.total <= availableBytes) return ok(undefined);
  const quadratic =
    estimate.accumulators + estimate.correlations + estimate.transient + estimate.matcher;
  const widest = estimate.largestSpace
    ? `; the widest space, ${estimate.largestSpace.id}, has ${estimate.largestSpace.width} channels`
    : '';
  const advice =
    estimate.models > quadratic && estimate.models > estimate.activations
      ? 'the models themselves need most of it; free memory or merge fewer models at once'
      : estimate.activations > quadratic
        ? 'lower --batch (one batch of activations dominates)'
        : 'zip fewer spaces with --stop-at, merge fewer models at once, or use --method wavg (it needs no statistics)';
  return fail(
    'out-of-memory',
    `Merging ${numModels} models needs about ${formatBytes(estimate.total)}, ` +
      `more than the ${formatBytes(availableBytes)} available${widest}; ${advice}.`,
  );
}
