/**
 * @file The public API of zipit-merge, grouped by the data flow:
 * ONNX files -> graph analysis -> statistics -> matching -> zip propagation -> merged ONNX.
 */

/* Errors as data. */
export { ok, fail, type Result, type Failure, type FailureReason } from './errors.js';
export type { ProgressEvent, ProgressListener } from './progress.js';

/* ONNX models: read, write, build. */
export {
  decodeModel,
  encodeModel,
  type Model,
  type Graph,
  type Node,
  type ValueInfo,
  type Attribute,
} from './onnx/model.js';
export { readModelFile, writeModelFile, writeFileAtomic } from './onnx/files.js';
export { GraphBuilder } from './onnx/builder.js';
export { type Tensor, type DType, float32Tensor } from './onnx/tensor.js';
export {
  storedPreprocessing,
  resolvePreprocessing,
  storedClassLabels,
  type Preprocessing,
} from './onnx/preprocessing.js';

/* Graph analysis: shapes, feature spaces, FLOPs. */
export { analyzeGraph, type AnalyzedGraph } from './graph/analyze.js';
export {
  analyzeSpaces,
  type FeatureSpace,
  type SpaceAnalysis,
  type ParamBinding,
  type Segment,
} from './graph/spaces.js';
export { countMacs } from './graph/flops.js';
export { SUPPORTED_OPS, type SupportedOp } from './graph/rules/index.js';

/* Running models. */
export {
  createSession,
  withCapturedOutputs,
  type Session,
  type RunOptions,
} from './runtime/session.js';

/* Data. */
export { loadData, parseDataSpec, parseTasks } from './data/spec.js';
export { loadFashionMnist } from './data/fashion-mnist.js';
export { batches, selectClasses, takeBalanced, type Dataset, type Batch } from './data/dataset.js';

/* Statistics and matching (pure). */
export { CovarianceAccumulator, type Statistics } from './stats/covariance.js';
export { encodeStatistics, decodeStatistics, sumStatistics } from './stats/file.js';
export { matchers, parseMatchOptions, MATCH_METHODS, type MatchMethod } from './match/index.js';
export type { Matching, MatchOptions, Matcher } from './match/types.js';

/* Merging. */
export {
  mergeModels,
  type MergeOptions,
  type MergeResult,
  type MergeReport,
} from './merge/pipeline.js';
export { findStopPoints, resolveStopPoint, type StopPoint } from './merge/stop-points.js';
export { permuteChannels } from './merge/permute-model.js';

/* Models, evaluation and reports. */
export {
  buildZooModel,
  ARCHITECTURES,
  type Architecture,
  type ZooSpec,
} from './zoo/architectures.js';
export { evaluateModels, modelScores, type EvalModel } from './eval/evaluate.js';
export { scoreTasks, type Accuracy, type ScoreSource } from './eval/metrics.js';
export { compareMethods, DEFAULT_METHODS, type MethodSpec } from './experiment/compare.js';
export { renderReport } from './report/html.js';
export type { ReportData } from './report/types.js';
