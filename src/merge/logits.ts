/**
 * @file Logit standardisation after a full merge: each output's logit is shifted and scaled to
 * mean 0 and standard deviation 1 over the merge data, folded into the output layer's weights.
 *
 * Why: a merged classifier averages K heads whose classes were trained apart; the classes of
 * one source often score on a larger scale than the other's, and joint accuracy (the argmax over
 * every class) then favours that source's task. Standardising each class's score on unlabelled
 * data puts the classes on one scale without labels. Exact as a function of the logits: the
 * output layer's row c is multiplied by 1/std_c and its bias becomes (b_c - mean_c)/std_c.
 */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import { intAttr } from '../graph/attributes.js';
import type { Model } from '../onnx/model.js';
import { float32Tensor, type Tensor } from '../onnx/tensor.js';
import type { ProgressListener } from '../progress.js';
import { createSession } from '../runtime/session.js';

/** How a full merge's logits leave the merge: as merged, or standardised on the merge data. */
export const LOGIT_RULES = ['standardize', 'raw'] as const;
export type LogitRule = (typeof LOGIT_RULES)[number];

/** The output layer: a Gemm whose weight and bias are initializers, and its orientation. */
interface OutputLayer {
  readonly weight: string;
  readonly bias: string;
  /** Classes x inputs when transB = 1, inputs x classes when 0. */
  readonly transB: boolean;
  readonly classes: number;
}

/** The Gemm writing the model's only output, or why there is none to standardise. */
function outputLayer(model: Model): Result<OutputLayer> {
  const outputs = model.graph.outputs;
  if (outputs.length !== 1)
    return fail('unsupported-model', `Expected one output to standardise, got ${outputs.length}.`);
  const producer = (value: string) => model.graph.nodes.find((n) => n.outputs[0] === value);
  let gemm = producer(outputs[0]!.name);
  // Our zoo names the logits through an Identity.
  while (gemm?.opType === 'Identity') gemm = producer(gemm.inputs[0]!);
  const weight = gemm?.inputs[1];
  const bias = gemm?.inputs[2];
  const w = weight === undefined ? undefined : model.graph.initializers.get(weight);
  const b = bias === undefined ? undefined : model.graph.initializers.get(bias);
  if (gemm?.opType !== 'Gemm' || w?.dtype !== 'float32' || b?.dtype !== 'float32')
    return fail(
      'unsupported-model',
      `Logit standardisation needs the output made by a Gemm with weight and bias initializers; ${gemm?.name ?? 'no node'} is not one (use --logits raw).`,
    );
  if (intAttr(gemm, 'transA', 0) !== 0 || w.dims.length !== 2)
    return fail('unsupported-model', `${gemm.name}: expected a 2-D weight and transA = 0.`);
  const transB = intAttr(gemm, 'transB', 0) === 1;
  const classes = transB ? w.dims[0]! : w.dims[1]!;
  if (b.data.length !== classes)
    return fail('unsupported-model', `${gemm.name}: expected a bias of ${classes} values.`);
  return ok({ weight: weight!, bias: bias!, transB, classes });
}

/** Per output column over the data: mean and population standard deviation, in float64. */
async function logitMoments(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  classes: number,
  options: { threads?: number; onProgress?: ProgressListener },
): Promise<Result<{ mean: Float64Array; std: Float64Array }>> {
  const session = await createSession(model, { threads: options.threads ?? 2 });
  if (!session.ok) return session;
  const sum = new Float64Array(classes);
  const square = new Float64Array(classes);
  let count = 0;
  let seen = 0;
  try {
    const input = session.value.inputNames[0]!;
    const output = model.graph.outputs[0]!.name;
    for (const batch of data) {
      const result = await session.value.run(
        { [input]: { dtype: 'float32', dims: [batch.size, ...inputDims], data: batch.input } },
        [output],
      );
      const logits = result[output]!.data as Float32Array;
      for (let i = 0; i < batch.size; i++)
        for (let c = 0; c < classes; c++) {
          const v = logits[i * classes + c]!;
          sum[c]! += v;
          square[c]! += v * v;
        }
      count += batch.size;
      seen += 1;
      options.onProgress?.({ phase: 'logits', done: seen, total: data.numBatches });
    }
  } catch (error: unknown) {
    return runtimeFailure('onnxruntime failed while measuring the merged logits', error);
  } finally {
    await session.value.release();
  }
  const n = Math.max(1, count);
  const mean = sum.map((s) => s / n);
  const std = square.map((s, c) => Math.sqrt(Math.max(0, s / n - mean[c]! * mean[c]!)));
  return ok({ mean, std });
}

/**
 * The model with each logit standardised over `data` (mean 0, std 1), folded into its output
 * Gemm. A class whose logit is constant on the data keeps its scale (only the shift applies).
 */
export async function standardizeLogits(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  options: { threads?: number; onProgress?: ProgressListener } = {},
): Promise<Result<Model>> {
  const layer = outputLayer(model);
  if (!layer.ok) return layer;
  const { weight, bias, transB, classes } = layer.value;
  const moments = await logitMoments(model, data, inputDims, classes, options);
  if (!moments.ok) return moments;
  const { mean, std } = moments.value;
  const w = model.graph.initializers.get(weight) as Tensor<'float32'>;
  const b = model.graph.initializers.get(bias) as Tensor<'float32'>;
  const inner = w.data.length / classes;
  const scale = Array.from(std, (s) => (s > 1e-12 ? 1 / s : 1));
  const newWeight = Float32Array.from(w.data);
  for (let c = 0; c < classes; c++)
    for (let j = 0; j < inner; j++) {
      const at = transB ? c * inner + j : j * classes + c;
      newWeight[at] = w.data[at]! * scale[c]!;
    }
  const newBias = Float32Array.from(b.data, (v, c) => (v - mean[c]!) * scale[c]!);
  const initializers = new Map(model.graph.initializers);
  initializers.set(weight, float32Tensor([...w.dims], newWeight));
  initializers.set(bias, float32Tensor([...b.dims], newBias));
  return ok({ ...model, graph: { ...model.graph, initializers } });
}
