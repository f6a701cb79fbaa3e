/**
 * @file Logit standardisation after merging: each output's logit is shifted and scaled to mean 0
 * and standard deviation 1 over the merge data, folded into the output layer's weights (every
 * head's, for a partial zip).
 *
 * Why: a merged classifier averages K heads whose classes were trained apart; the classes of
 * one source often score on a larger scale than the other's, and joint accuracy (the argmax over
 * every class) then favours that source's task. Standardising each class's score on unlabelled
 * data puts the classes on one scale without labels. A partial zip's heads are each source's own
 * classifier on a shared trunk, and joint accuracy compares their confidences in the same way.
 * Exact as a function of the logits: the output layer's row c is multiplied by 1/std_c and its
 * bias becomes (b_c - mean_c)/std_c.
 */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import { intAttr } from '../graph/attributes.js';
import type { Model } from '../onnx/model.js';
import { float32Tensor, type Tensor } from '../onnx/tensor.js';
import type { ProgressListener } from '../progress.js';
import { createSession } from '../runtime/session.js';

/** How a merge's logits leave it: as merged, or standardised on the merge data. */
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

/**
 * Whether `output` is computed from the model's other outputs (a multi-head model's combined
 * output, the mean or concatenation of its heads): it follows their standardisation.
 */
function readsOtherOutputs(model: Model, output: string): boolean {
  const others = new Set(model.graph.outputs.map((o) => o.name).filter((n) => n !== output));
  const producer = new Map(model.graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n])));
  const seen = new Set<string>();
  const pending = [output];
  while (pending.length > 0) {
    const value = pending.pop()!;
    if (seen.has(value)) continue;
    seen.add(value);
    if (value !== output && others.has(value)) return true;
    for (const input of producer.get(value)?.inputs ?? []) if (input !== '') pending.push(input);
  }
  return false;
}

/** The Gemm writing `output`, or why there is none to standardise. */
function outputLayer(model: Model, output: string): Result<OutputLayer> {
  const producer = (value: string) => model.graph.nodes.find((n) => n.outputs[0] === value);
  let gemm = producer(output);
  // Our zoo names the logits through an Identity.
  while (gemm?.opType === 'Identity') gemm = producer(gemm.inputs[0]!);
  const weight = gemm?.inputs[1];
  const bias = gemm?.inputs[2];
  const w = weight === undefined ? undefined : model.graph.initializers.get(weight);
  const b = bias === undefined ? undefined : model.graph.initializers.get(bias);
  if (gemm?.opType !== 'Gemm' || w?.dtype !== 'float32' || b?.dtype !== 'float32')
    return fail(
      'unsupported-model',
      `Logit standardisation needs each output made by a Gemm with weight and bias initializers; ${gemm?.name ?? 'no node'} is not one (use --logits raw).`,
    );
  if (intAttr(gemm, 'transA', 0) !== 0 || w.dims.length !== 2)
    return fail('unsupported-model', `${gemm.name}: expected a 2-D weight and transA = 0.`);
  const transB = intAttr(gemm, 'transB', 0) === 1;
  const classes = transB ? w.dims[0]! : w.dims[1]!;
  if (b.data.length !== classes)
    return fail('unsupported-model', `${gemm.name}: expected a bias of ${classes} values.`);
  return ok({ weight: weight!, bias: bias!, transB, classes });
}

/** Per output, per column over the data: mean and population standard deviation, in float64. */
async function logitMoments(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  outputs: readonly string[],
  layers: readonly OutputLayer[],
  options: { threads?: number; onProgress?: ProgressListener },
): Promise<Result<{ mean: Float64Array; std: Float64Array }[]>> {
  const session = await createSession(model, { threads: options.threads ?? 2 });
  if (!session.ok) return session;
  const sums = layers.map((l) => ({
    sum: new Float64Array(l.classes),
    square: new Float64Array(l.classes),
  }));
  let count = 0;
  let seen = 0;
  try {
    const input = session.value.inputNames[0]!;
    for (const batch of data) {
      const result = await session.value.run(
        { [input]: { dtype: 'float32', dims: [batch.size, ...inputDims], data: batch.input } },
        [...outputs],
      );
      for (const [k, name] of outputs.entries()) {
        const logits = result[name]!.data as Float32Array;
        const classes = layers[k]!.classes;
        const { sum, square } = sums[k]!;
        for (let i = 0; i < batch.size; i++)
          for (let c = 0; c < classes; c++) {
            const v = logits[i * classes + c]!;
            sum[c]! += v;
            square[c]! += v * v;
          }
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
  return ok(
    sums.map(({ sum, square }) => {
      const mean = sum.map((v) => v / n);
      const std = square.map((v, c) => Math.sqrt(Math.max(0, v / n - mean[c]! * mean[c]!)));
      return { mean, std };
    }),
  );
}

/**
 * The model with each logit of every output standardised over `data` (mean 0, std 1), folded
 * into the Gemm that writes the output (a model with one head per source has one per head; its
 * combined output, made from the heads, follows them). A class whose logit is constant on the
 * data keeps its scale (only the shift applies).
 */
export async function standardizeLogits(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  options: { threads?: number; onProgress?: ProgressListener } = {},
): Promise<Result<Model>> {
  const layers: OutputLayer[] = [];
  const outputs = model.graph.outputs.filter((o) => !readsOtherOutputs(model, o.name));
  for (const output of outputs) {
    const layer = outputLayer(model, output.name);
    if (!layer.ok) return layer;
    if (layers.some((l) => l.weight === layer.value.weight))
      return fail(
        'unsupported-model',
        `Two outputs come from one Gemm (${layer.value.weight}); standardise needs one per output (use --logits raw).`,
      );
    layers.push(layer.value);
  }
  const moments = await logitMoments(
    model,
    data,
    inputDims,
    outputs.map((o) => o.name),
    layers,
    options,
  );
  if (!moments.ok) return moments;
  const initializers = new Map(model.graph.initializers);
  for (const [k, { weight, bias, transB, classes }] of layers.entries()) {
    const { mean, std } = moments.value[k]!;
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
    initializers.set(weight, float32Tensor([...w.dims], newWeight));
    initializers.set(bias, float32Tensor([...b.dims], newBias));
  }
  return ok({ ...model, graph: { ...model.graph, initializers } });
}
