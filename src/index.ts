/**
 * @file The public API of zipit-merge, one level deep: everything a library user (and the
 * `zipit` CLI, which imports nothing else of the library) needs, grouped by the data flow
 * ONNX files -> feature spaces -> statistics -> matching -> merged ONNX -> evaluation.
 * Internals (the graph builder, onnxruntime sessions, the statistics accumulators, the op rule
 * table, test helpers) stay behind their modules.
 */

/* Errors as data: a function that can fail on the user's input returns a Result. */
export { ok, fail, type Result, type Failure, type FailureReason } from './errors.js';

/* Progress: long operations take an optional listener of these events. */
export type { ProgressEvent, ProgressListener } from './progress.js';

/*
 * ONNX models in memory and on disk. Every write is atomic and refuses to replace one of the
 * `protect`ed inputs (also through symbolic or hard links); checkOutputPath checks that before
 * any work starts.
 */
export {
  readModelFile,
  writeModelFile,
  writeFileAtomic,
  checkOutputPath,
  type OutputOptions,
} from './onnx/files.js';
export {
  decodeModel,
  encodeModel,
  type Model,
  type Graph,
  type Node,
  type ValueInfo,
  type Attribute,
  type Dim,
} from './onnx/model.js';
export type { Tensor, DType } from './onnx/tensor.js';
export { modelImageShape, scoredOutputs } from './onnx/model-io.js';

/*
 * A model's own metadata: the input preprocessing and the classes it was trained on, as zipit's
 * training and merges store them. Pass them to mergeModels and evaluateModels instead of
 * retyping them; explicit values win over stored ones in resolvePreprocessing.
 */
export {
  storedPreprocessing,
  resolvePreprocessing,
  storedClassLabels,
  storedTrainedClasses,
  storedTasks,
  type Preprocessing,
} from './onnx/preprocessing.js';

/*
 * Inspection: a model's shapes, its feature spaces (channel axes that must be permuted
 * together, derived from the graph), its cost in MACs, and the stop points of partial zipping.
 */
export { analyzeGraph, type AnalyzedGraph } from './graph/analyze.js';
export {
  analyzeSpaces,
  type FeatureSpace,
  type SpaceAnalysis,
  type SpaceKind,
  type ConcatSpace,
  type ParamBinding,
  type Segment,
} from './graph/spaces.js';
export { countMacs } from './graph/flops.js';
export { SUPPORTED_OPS, type SupportedOp } from './graph/rules/index.js';
export { findStopPoints, allStopPointIds, type StopPoint } from './merge/stop-points.js';

/* Data: dataset specs (`fashion-mnist:train`, `idx:...`, `cifar10:...`), tasks, draws, batches. */
export { loadData, parseDataSpec, dataFilesOf, parseTasks, type DataSpec } from './data/spec.js';
export { loadFashionMnist } from './data/fashion-mnist.js';
export {
  takeBalanced,
  selectClasses,
  batches,
  type Dataset,
  type Batch,
  type Normalization,
} from './data/dataset.js';

/* Matching (pure): correlation matrix -> Matching, by method name; the paper's defaults. */
export {
  matchers,
  parseMatchOptions,
  MATCH_METHODS,
  CORRELATION_METHODS,
  DEFAULT_MATCH_OPTIONS,
  unitIntervalProblem,
  type MatchMethod,
  type CorrelationMethod,
  type RawMatchOptions,
  type ParsedMatchOptions,
  type Matching,
  type MatchOptions,
  type Matcher,
} from './match/index.js';

/*
 * Merging K models of one architecture (ZipIt!, Permute, weight averaging; partial zipping;
 * statistics correction), and the default memory budget a merge is held to.
 * permuteChannels makes a function-preserving permuted copy of a model: a merge of a model with
 * it must give the model back.
 */
export {
  HEAD_ORDER_RULES,
  mergeModels,
  type HeadOrderRule,
  type MergeOptions,
  type MergeResult,
  type MergeReport,
  type SpaceReport,
} from './merge/pipeline.js';
/*
 * How a full merge builds the classifier: class-aware (output class j from the models trained
 * on j; MergeOptions.trainedClasses or the models' metadata) or the paper's average.
 */
export { HEAD_RULES, type HeadRule } from './merge/class-head.js';
export { defaultMemoryLimit, type MachineMemory } from './merge/memory-estimate.js';
export { permuteChannels } from './merge/permute-model.js';
export { resetSources, type SourceResetOptions } from './merge/source-reset.js';
export { LOGIT_RULES, standardizeLogits, type LogitRule } from './merge/logits.js';
export { PAPER_MERGE, RECOMMENDED_MERGE, type MergeProcedure } from './merge/recommended.js';

/*
 * Statistics in shards: collectMergeStatistics measures one shard of the merge data, the files
 * of several shards sum to the statistics of all, which mergeModels takes as
 * `options.statistics`.
 */
export { collectMergeStatistics } from './merge/pipeline.js';
export {
  encodeStatistics,
  decodeStatistics,
  sumStatistics,
  sumStatisticsFiles,
  type StatisticsSet,
  type StatisticsFileBytes,
  type LabeledStatistics,
} from './stats/file.js';

/* Training zoo models (MLP, VGG, ResNet-20) with onnxruntime, written as inference ONNX. */
export {
  trainModel,
  checkTrainOptions,
  defaultLearningRate,
  DEFAULT_WEIGHT_DECAY,
  taskAccuracy,
  type TrainOptions,
  type TrainedModel,
  type TrainSummary,
  type Head,
} from './train/trainer.js';
export type { Schedule } from './train/schedule.js';
export {
  buildZooModel,
  ARCHITECTURES,
  type Architecture,
  type ZooSpec,
} from './zoo/architectures.js';

/* Evaluation: joint and per-task accuracy by the reference's rules; raw scores per output. */
export { evaluateModels, modelScores, type EvalModel, type EvalOptions } from './eval/evaluate.js';
export { scoreTasks, type Accuracy, type ScoreSource } from './eval/metrics.js';

/* Experiments: every baseline on one set of models; the paper's experiment over random splits. */
export {
  compareMethods,
  DEFAULT_METHODS,
  type MethodSpec,
  type CompareInput,
  type CompareOutput,
} from './experiment/compare.js';
export {
  runExperiment,
  markdownTable,
  DEFAULT_ALPHA_GRID,
  DEFAULT_BETA_GRID,
  type ExperimentOptions,
  type ExperimentResults,
  type PairResult,
} from './experiment/experiment.js';

/*
 * Label-free tuning: ZipIt!'s alpha and beta chosen over a grid by the merge's agreement with
 * the source models' own predictions on held-out merge images (no labels).
 */
export {
  tuneMerge,
  agreementScores,
  choosePoint,
  splitHoldout,
  withTuningMetadata,
  AGREEMENT_RULES,
  DEFAULT_AGREEMENT_RULE,
  DEFAULT_TUNE_HOLDOUT,
  type AgreementRule,
  type TuneOptions,
  type TunePoint,
  type Tuning,
  type TuneResult,
} from './experiment/tune.js';

/* Reports: a self-contained HTML page of a comparison. */
export { renderReport } from './report/html.js';
export type {
  ReportData,
  ReportRow,
  ReportTask,
  ReportMarker,
  CurvePoint,
} from './report/types.js';
