/** @file The data an HTML report is rendered from: results, partial-zipping curve, merge counts, correlations. */

/**
 * Everything `renderReport` (./html.ts) draws. Plain data (with `heatmap.values` an array, JSON
 * round-trips it), so the CLI can save it beside the HTML and a test can compare what the page
 * shows against it.
 *
 * Units: accuracies are fractions in [0, 1] (the page shows percentages); `flops` are
 * multiply-accumulates per image, the convention of the ZipIt! paper's FLOPs column.
 */
export interface ReportData {
  /** Page heading and `<title>`; often built from user file names, so it is escaped. */
  readonly title: string;
  /** One line under the heading, e.g. the command that made the numbers and the machine. */
  readonly subtitle?: string;
  /** The tasks, in the order of every `tasks` array below (task k is source model k's task). */
  readonly tasks: readonly ReportTask[];
  /** The results table, one row per method, in display order. */
  readonly rows: readonly ReportRow[];
  /** Partial-zipping stop points, drawn as two lines (joint and average) against FLOPs. */
  readonly curve?: readonly CurvePoint[];
  /** Single points on the curve chart: the ensemble and each source model alone. */
  readonly markers?: readonly ReportMarker[];
  /** Per feature space, how the matcher joined features (a stacked bar each), in graph order. */
  readonly spaces?: readonly SpaceMerges[];
  /** One space's correlation matrix over all models' features, drawn as a heat map. */
  readonly heatmap?: CorrelationHeatmap;
}

/** One task: a name and the class indices (of the shared label space) it covers. */
export interface ReportTask {
  /** Shown as the table's column heading. */
  readonly name: string;
  /** Class indices, any order; shown compactly as ranges (`0–4, 9`). */
  readonly classes: readonly number[];
}

/** One method's scores (a row of the results table). Accuracies are fractions in [0, 1]. */
export interface ReportRow {
  /** e.g. `ZipIt!13/20`, `Permute`, `Ensemble`, `Model A`. */
  readonly method: string;
  /** Joint accuracy: prediction among all tasks' classes. */
  readonly joint: number;
  /** Per-task accuracy, argmax within task k's classes; same order as {@link ReportData.tasks}. */
  readonly tasks: readonly number[];
  /** Mean of `tasks`. */
  readonly avg: number;
  /** Multiply-accumulates per image of the evaluated model (all heads included). */
  readonly flops: number;
  /** Free-form hyper-parameters, e.g. `alpha 0.5, beta 0.5`; a column appears if any row has it. */
  readonly params?: string;
  /** Standard deviations over repeated runs (fractions, same layout); shown as `± x.x`. */
  readonly std?: ReportStd;
}

/** Standard deviations of a {@link ReportRow}'s accuracies, as fractions in [0, 1]. */
export interface ReportStd {
  /** Of the joint accuracy. */
  readonly joint: number;
  /** Of each task's accuracy, in {@link ReportData.tasks} order. */
  readonly tasks: readonly number[];
  /** Of the average task accuracy (over runs, not over tasks). */
  readonly avg: number;
}

/** One partial-zipping stop point: the first `zipped` of `total` layers zipped, then K heads. */
export interface CurvePoint {
  /** Short label drawn next to the point, e.g. `13/20`. */
  readonly label: string;
  /** Layers zipped (the paper's a in ZipIt!_{a/b}). */
  readonly zipped: number;
  /** Layers in one source model (the paper's b). */
  readonly total: number;
  /** Joint accuracy, fraction in [0, 1]. */
  readonly joint: number;
  /** Average per-task accuracy, fraction in [0, 1]. */
  readonly avg: number;
  /** Multiply-accumulates per image (trunk once plus K heads). */
  readonly flops: number;
}

/** A reference point on the curve chart (ensemble, a source model alone). */
export interface ReportMarker {
  /** Legend text, e.g. `Ensemble` or `Model A`. */
  readonly label: string;
  /** Joint accuracy, fraction in [0, 1]. */
  readonly joint: number;
  /** Average per-task accuracy, fraction in [0, 1]. */
  readonly avg: number;
  /** Multiply-accumulates per image. */
  readonly flops: number;
}

/** What the matcher did in one feature space (the merge pipeline's per-space report). */
export interface SpaceMerges {
  /** The space's id (graph order, as `--stop-at` counts). */
  readonly id: number;
  /** Features per source model in this space (channels). */
  readonly width: number;
  /** The space's kind, e.g. `plain` or `residual`; residual spaces are labelled in bold. */
  readonly kind: string;
  /** Joins of features from different models. */
  readonly crossModelMerges: number;
  /** Joins of features of the same model (ZipIt!'s within-model merges). */
  readonly sameModelMerges: number;
}

/**
 * A correlation matrix over the features of all models in one space, concatenated model by
 * model (model k's feature j is index `k * size / numModels + j`).
 */
export interface CorrelationHeatmap {
  /** The space it belongs to (matches a {@link SpaceMerges.id} when `spaces` is given). */
  readonly spaceId: number;
  /** Rows (= columns) of the matrix: numModels times the per-model width. */
  readonly size: number;
  /**
   * `size * size` correlations in [-1, 1], row-major. NaN (a dead channel) is allowed and
   * drawn grey.
   */
  readonly values: ArrayLike<number>;
  /** K; the matrix is split into K x K blocks, whose boundaries the map marks. */
  readonly numModels: number;
}
