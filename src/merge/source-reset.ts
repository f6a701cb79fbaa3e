/**
 * @file The source models' BatchNorm reset: each source's running statistics re-estimated on
 * the merge data before it is matched, as the reference's evaluation scripts do before merging
 * (and before scoring their base models and ensemble). Models without BatchNorm pass unchanged.
 */
import { fail, ok, type Result } from '../errors.js';
import {
  batches,
  checkImageShape,
  type Batches,
  type Dataset,
  type Normalization,
} from '../data/dataset.js';
import { analyzeGraph, type AnalyzedGraph } from '../graph/analyze.js';
import type { Model } from '../onnx/model.js';
import { modelImageShape, staticBatch } from '../onnx/model-io.js';
import { correctionKind, resetBatchNorm, type RepairOptions } from './repair.js';

/** Each graph with its BatchNorm statistics reset on `pass`; graphs without BN are kept. */
export async function resetSourceGraphs(
  graphs: readonly AnalyzedGraph[],
  pass: Batches,
  inputDims: readonly number[],
  options: RepairOptions = {},
): Promise<Result<AnalyzedGraph[]>> {
  const reset: AnalyzedGraph[] = [];
  for (const graph of graphs) {
    if (correctionKind(graph) !== 'batchnorm') {
      reset.push(graph);
      continue;
    }
    const model = await resetBatchNorm(graph, pass, inputDims, options);
    if (!model.ok) return model;
    // Only initializer values changed, but the analysis holds the model it was made from.
    const analyzed = analyzeGraph(model.value);
    if (!analyzed.ok) return analyzed;
    reset.push(analyzed.value);
  }
  return ok(reset);
}

/** Options of {@link resetSources}. */
export interface SourceResetOptions extends RepairOptions {
  readonly batchSize?: number;
}

/**
 * The models with their BatchNorm statistics reset on `data` (normalised with `normalization`),
 * for scoring the sources and their ensemble the way the reference does.
 */
export async function resetSources(
  models: readonly Model[],
  labels: readonly string[],
  data: Dataset,
  normalization: Normalization,
  options: SourceResetOptions = {},
): Promise<Result<Model[]>> {
  const graphs: AnalyzedGraph[] = [];
  for (const [k, model] of models.entries()) {
    const shape = modelImageShape(model);
    if (shape !== undefined) {
      const fits = checkImageShape(data, shape, labels[k]);
      if (!fits.ok) return fits;
    }
    const graph = analyzeGraph(model);
    if (!graph.ok) return fail(graph.reason, `${labels[k]}: ${graph.message}`);
    graphs.push(graph.value);
  }
  const reset: Model[] = [];
  // Each model gets its own pass: a static batch axis fixes the batch size per model.
  for (const [k, graph] of graphs.entries()) {
    if (correctionKind(graph) !== 'batchnorm') {
      reset.push(models[k]!);
      continue;
    }
    const fixed = staticBatch(graph.model);
    const pass = batches(data, {
      batchSize: fixed ?? options.batchSize ?? 128,
      normalization,
      dropLast: fixed !== undefined,
    });
    if (!pass.ok) return pass;
    const done = await resetSourceGraphs(
      [graph],
      pass.value,
      [data.channels, data.height, data.width],
      options,
    );
    if (!done.ok) return done;
    reset.push(done.value[0]!.model);
  }
  return ok(reset);
}
