/** @file Estimates the memory the merge statistics need, so a merge too big for the machine is refused up front. */
import { fail, ok, type Result } from '../errors.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace } from '../graph/spaces.js';
import { staticSize } from '../graph/value-state.js';

/** What the estimate needs to know about one mergeable space. */
export interface SpaceSize {
  readonly id: number;
  /** Channels per model, n. */
  readonly width: number;
  /** Positions per sample at the space's measurement site (h * w of a map, 1 after a flatten). */
  readonly positionsPerSample: number;
}

/** Bytes per part of the statistics pass (see {@link estimateStatisticsMemory}). */
export interface MemoryEstimate {
  /** Streaming accumulators of every space, held for the whole pass: 8 ((Kn)^2 + 2Kn) each. */
  readonly accumulators: number;
  /** The correlation matrices kept for the report after matching: 8 (Kn)^2 each. */
  readonly correlations: number;
  /** The largest transient buffer set: one batch's Gram copies, or one finalize's matrices. */
  readonly transient: number;
  /** One batch's captured activations of all K models: 4 K batch Σ n * positions. */
  readonly activations: number;
  /** The sum of the above. */
  readonly total: number;
  /** The widest space (it dominates the quadratic terms), or undefined without spaces. */
  readonly largestSpace?: { readonly id: number; readonly width: number };
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

/**
 * Estimates the peak memory (bytes) of the statistics pass for K models over `spaces`
 * (ALGORITHM.md "Statistics"): per space the K-stacked accumulators of Kn features (float64
 * Gram matrix, sum and shift), the correlation kept per space, the largest transient (a
 * batch's float32 Gram from onnxruntime, its float32 copy and its float64 conversion, or the
 * float64 covariance and correlation of one finalize), and one batch of captured activations.
 *
 * NOTE: this counts the statistics only, not the models, the dataset or onnxruntime's own
 * arenas, which scale with the model rather than with K^2 n^2; callers add a margin.
 */
export function estimateStatisticsMemory(
  numModels: number,
  spaces: readonly SpaceSize[],
  batchSize: number,
): MemoryEstimate {
  let accumulators = 0;
  let correlations = 0;
  let transient = 0;
  let activations = 0;
  let largest: { id: number; width: number } | undefined;
  for (const space of spaces) {
    const features = numModels * space.width; // Kn
    const square = features * features;
    accumulators += 8 * (square + 2 * features);
    correlations += 8 * square;
    // Gram: 4 (onnxruntime output) + 4 (assembled copy) + 8 (float64 for the accumulator);
    // finalize: 8 (covariance) + 8 (correlation). The larger of the two is live at a time.
    transient = Math.max(transient, 16 * square);
    activations += 4 * numModels * batchSize * space.width * space.positionsPerSample;
    if (largest === undefined || space.width > largest.width)
      largest = { id: space.id, width: space.width };
  }
  return {
    accumulators,
    correlations,
    transient,
    activations,
    total: accumulators + correlations + transient + activations,
    ...(largest ? { largestSpace: largest } : {}),
  };
}

/** Bytes as text for messages: 1.5 GB, 12.0 MB, 640 KB. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} KB`;
}

/**
 * Refuses an estimate above `availableBytes` with an 'out-of-memory' Failure that names the
 * flag which reduces the largest part: `--batch` when one batch's activations dominate,
 * otherwise `--stop-at` (fewer spaces zipped) since the quadratic terms grow with K^2 n^2.
 */
export function checkMemoryBudget(
  estimate: MemoryEstimate,
  numModels: number,
  availableBytes: number,
): Result<void> {
  if (estimate.total <= availableBytes) return ok(undefined);
  const quadratic = estimate.accumulators + estimate.correlations + estimate.transient;
  const widest = estimate.largestSpace
    ? `; the widest space, ${estimate.largestSpace.id}, has ${estimate.largestSpace.width} channels`
    : '';
  const advice =
    estimate.activations > quadratic
      ? 'lower --batch (one batch of activations dominates)'
      : 'zip fewer spaces with --stop-at, or merge fewer models at once';
  return fail(
    'out-of-memory',
    `Merging ${numModels} models needs about ${formatBytes(estimate.total)} for statistics, ` +
      `more than the ${formatBytes(availableBytes)} available${widest}; ${advice}.`,
  );
}
