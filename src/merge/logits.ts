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
 * bias becomes (b_c - mean_c)/std_c. An output not written by such a layer (a Relu after it, a
 * MatMul and Add, a convolutional head, two outputs of one Gemm) gets the same affine map as two
 * nodes appended to it instead, so every classifier shape is standardised the same way.
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

/**
 * The Gemm writing `output` whose weight and bias are float32 initializers, in which the
 * standardisation can be folded; undefined when there is none (the map is then appended).
 */
function foldableLayer(model: Model, output: string): OutputLayer | undefined {
  const producer = (value: string) => model.graph.nodes.find((n) => n.outputs[0] === value);
  let gemm = producer(output);
  // Our zoo names the logits through an Identity.
  while (gemm?.opType === 'Identity') gemm = producer(gemm.inputs[0]!);
  if (gemm?.opType !== 'Gemm' || intAttr(gemm, 'transA', 0) !== 0) return undefined;
  const [weight, bias] = [gemm.inputs[1], gemm.inputs[2]];
  const w = weight === undefined ? undefined : model.graph.initializers.get(weight);
  const b = bias === undefined ? undefined : model.graph.initializers.get(bias);
  if (w?.dtype !== 'float32' || b?.dtype !== 'float32' || w.dims.length !== 2) return undefined;
  const transB = intAttr(gemm, 'transB', 0) === 1;
  const classes = transB ? w.dims[0]! : w.dims[1]!;
  // A bias broadcast from fewer values cannot carry one shift per class.
  if (b.data.length !== classes) return undefined;
  // Shared between outputs or graph values that something else reads: folding would change them.
  const readers = model.graph.nodes.filter(
    (n) => n.inputs.includes(weight!) || n.inputs.includes(bias!),
  );
  if (readers.length !== 1) return undefined;
  return { weight: weight!, bias: bias!, transB, classes };
}

/** Per output, per column over the data: mean and population standard deviation, in float64. */
async function logitMoments(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  outputs: readonly string[],
  options: { threads?: number; onProgress?: ProgressListener },
): Promise<Result<{ mean: Float64Array; std: Float64Array }[]>> {
  const session = await createSession(model, { threads: options.threads ?? 2 });
  if (!session.ok) return session;
  let sums: { sum: Float64Array; square: Float64Array }[] | undefined;
  let count = 0;
  let seen = 0;
  try {
    const input = session.value.inputNames[0]!;
    for (const batch of data) {
      const result = await session.value.run(
        { [input]: { dtype: 'float32', dims: [batch.size, ...inputDims], data: batch.input } },
        [...outputs],
      );
      if (sums === undefined) {
        const shapes = outputs.map((name) => result[name]!.dims);
        const bad = shapes.findIndex((d) => d.length !== 2 || d[0] !== batch.size);
        if (bad >= 0)
          return fail(
            'unsupported-model',
            `Logit standardisation needs each output shaped [batch, classes]; '${outputs[bad]}' is [${shapes[bad]!.join(', ')}] (use --logits raw).`,
          );
        sums = shapes.map((d) => ({
          sum: new Float64Array(d[1]!),
          square: new Float64Array(d[1]!),
        }));
      }
      for (const [k, name] of outputs.entries()) {
        const logits = result[name]!.data as Float32Array;
        const { sum, square } = sums[k]!;
        const classes = sum.length;
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
  if (sums === undefined) return fail('bad-dataset', 'No merge data to standardise the logits on.');
  const n = Math.max(1, count);
  return ok(
    sums.map(({ sum, square }) => {
      const mean = sum.map((v) => v / n);
      const std = square.map((v, c) => Math.sqrt(Math.max(0, v / n - mean[c]! * mean[c]!)));
      return { mean, std };
    }),
  );
}

/** Folds (z - mean) * scale into the Gemm's rows and bias. */
function foldInto(
  initializers: Map<string, Tensor>,
  { weight, bias, transB, classes }: OutputLayer,
  mean: Float64Array,
  scale: readonly number[],
): void {
  const w = initializers.get(weight) as Tensor<'float32'>;
  const b = initializers.get(bias) as Tensor<'float32'>;
  const inner = w.data.length / classes;
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

/**
 * The model with each logit of every output standardised over `data` (mean 0, std 1): folded
 * into the Gemm that writes the output where there is one of its own, else appended as
 * `Mul(Sub(z, mean), scale)` under the output's name. A model with one head per source has one
 * map per head; its combined output, made from the heads, follows them. A class whose logit is
 * constant on the data keeps its scale (only the shift applies).
 */
export async function standardizeLogits(
  model: Model,
  data: Batches,
  inputDims: readonly number[],
  options: { threads?: number; onProgress?: ProgressListener } = {},
): Promise<Result<Model>> {
  const outputs = model.graph.outputs
    .filter((o) => !readsOtherOutputs(model, o.name))
    .map((o) => o.name);
  const moments = await logitMoments(model, data, inputDims, outputs, options);
  if (!moments.ok) return moments;
  const initializers = new Map(model.graph.initializers);
  const taken = new Set(model.graph.nodes.flatMap((n) => [...n.inputs, ...n.outputs]));
  for (const input of model.graph.inputs) taken.add(input.name);
  for (const name of initializers.keys()) taken.add(name);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const nodes = [...model.graph.nodes];
  for (const [k, output] of outputs.entries()) {
    const { mean, std } = moments.value[k]!;
    const scale = Array.from(std, (s) => (s > 1e-12 ? 1 / s : 1));
    const layer = foldableLayer(model, output);
    if (layer !== undefined && layer.classes === mean.length) {
      foldInto(initializers, layer, mean, scale);
      continue;
    }
    // The producer now writes a new value; two nodes right after it rebuild the output, so
    // readers of the output (a combined output) see the standardised logits in graph order.
    const at = nodes.findIndex((n) => n.outputs.includes(output));
    if (at < 0)
      return fail(
        'unsupported-model',
        `Output '${output}' is not written by any node; nothing to standardise (use --logits raw).`,
      );
    const raw = fresh(`${output}_raw`);
    const meanName = fresh(`${output}_logit_mean`);
    const scaleName = fresh(`${output}_logit_scale`);
    const centred = fresh(`${output}_centred`);
    initializers.set(meanName, float32Tensor([mean.length], Float32Array.from(mean)));
    initializers.set(scaleName, float32Tensor([scale.length], Float32Array.from(scale)));
    const producer = nodes[at]!;
    nodes.splice(
      at,
      1,
      { ...producer, outputs: producer.outputs.map((v) => (v === output ? raw : v)) },
      {
        name: fresh(`${output}_standardize_sub`),
        opType: 'Sub',
        domain: '',
        inputs: [raw, meanName],
        outputs: [centred],
        attributes: {},
      },
      {
        name: fresh(`${output}_standardize_mul`),
        opType: 'Mul',
        domain: '',
        inputs: [centred, scaleName],
        outputs: [output],
        attributes: {},
      },
    );
  }
  return ok({ ...model, graph: { ...model.graph, nodes, initializers } });
}
