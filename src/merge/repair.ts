/** @file Statistics correction after merging: BatchNorm reset, or REPAIR folded into the producers. */
import { ok, runtimeFailure, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import { floatAttr } from '../graph/attributes.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import { channelsFirstPerm } from '../graph/space-layouts.js';
import { gemmWeightAxes } from '../graph/rules/gemm.js';
import type { FeatureSpace } from '../graph/spaces.js';
import { GraphBuilder } from '../onnx/builder.js';
import { defaultOpset, type Model, type Node } from '../onnx/model.js';
import { float32Tensor, int64Tensor, type Tensor } from '../onnx/tensor.js';
import type { ProgressListener } from '../progress.js';
import { createSession } from '../runtime/session.js';
import type { ChannelMoments } from '../stats/channel-moments.js';
import { headName } from './multi-head.js';
import type { StopPoint } from './stop-points.js';
import type { SpaceTransform } from './transform.js';

/**
 * A tensor to normalise with batch statistics during the correction pass: `input` becomes
 * `output` = gamma * (input - mean_b) / sqrt(var_b + eps) + beta.
 */
interface NormPoint {
  readonly input: string;
  readonly output: string;
  readonly gamma: Float32Array;
  readonly beta: Float32Array;
  readonly epsilon: number;
  readonly rank: number;
  /** Spatial positions per image (H*W, or a transformer's tokens), for the unbiased variance. */
  readonly positions: number;
  /** The channel axis when not 1 (a MatMul's output: the last axis). */
  readonly axis?: number;
}

/** Options of the correction pass. */
export interface RepairOptions {
  readonly threads?: number;
  readonly onProgress?: ProgressListener;
}

/** Which correction applies: 'batchnorm' when the model has BN nodes, else 'repair'. */
export function correctionKind(graph: AnalyzedGraph): 'batchnorm' | 'repair' {
  return graph.model.graph.nodes.some((n) => n.opType === 'BatchNormalization')
    ? 'batchnorm'
    : 'repair';
}

/** The names of a point's batch mean and variance in the correction variant. */
interface PointOutputs {
  readonly mean: string;
  readonly variance: string;
}

/**
 * Adds the nodes that normalise one point by its batch statistics, under `prefix`: mean and
 * variance over the batch and spatial axes, then the affine map to gamma and beta.
 *
 * From opset 14 on, one BatchNormalization node in training mode does all of it (its running
 * mean and variance outputs, with momentum 0, are the batch mean and the population variance,
 * as onnxruntime computes them): one fused kernel instead of ten nodes and their temporaries.
 * Older opsets have no training mode, and get the decomposed form.
 */
function addBatchNormalization(
  b: GraphBuilder,
  p: NormPoint,
  prefix: string,
  opset: number,
): PointOutputs {
  const axis = p.axis ?? 1;
  if (axis !== 1) {
    // Channels last: normalise a channels-first transpose, and transpose the result back.
    const perm = channelsFirstPerm(p.rank, axis);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    const first = b.op('Transpose', [p.input], { perm }, `${prefix}/channels_first`);
    const normalised = `${prefix}/normalised`;
    const outputs = addBatchNormalization(
      b,
      { ...p, input: first, output: normalised, axis: 1 },
      prefix,
      opset,
    );
    b.node(
      'Transpose',
      [normalised],
      { perm: inverse },
      { name: `${prefix}/channels_back`, outputs: [p.output] },
    );
    return outputs;
  }
  if (opset >= 14 && p.rank >= 2) {
    const c = p.gamma.length;
    const mean = `${prefix}/mean`;
    const variance = `${prefix}/var`;
    b.node(
      'BatchNormalization',
      [
        p.input,
        b.weight(`${prefix}/gamma`, float32Tensor([c], p.gamma)),
        b.weight(`${prefix}/beta`, float32Tensor([c], p.beta)),
        b.weight(`${prefix}/zero`, float32Tensor([c], new Float32Array(c))),
        b.weight(`${prefix}/one`, float32Tensor([c], new Float32Array(c).fill(1))),
      ],
      { epsilon: { float: p.epsilon }, momentum: { float: 0 }, training_mode: 1 },
      { name: `${prefix}/batchnorm`, outputs: [p.output, mean, variance] },
    );
    return { mean, variance };
  }
  const spatial = p.rank > 2;
  const paramDims = [p.gamma.length, ...new Array<number>(Math.max(0, p.rank - 2)).fill(1)];
  const gamma = b.weight(`${prefix}/gamma`, float32Tensor(paramDims, p.gamma));
  const beta = b.weight(`${prefix}/beta`, float32Tensor(paramDims, p.beta));
  const eps = b.weight(`${prefix}/eps`, float32Tensor([], Float32Array.of(p.epsilon)));
  const axesInput = opset >= 18 ? b.weight(`${prefix}/axes`, int64Tensor([1], [0])) : '';
  // The mean over the batch and spatial axes as the batch mean of per-image spatial means:
  // GlobalAveragePool is onnxruntime's fast path, ReduceMean over (0, 2, 3) of NCHW a slow one
  // (equal spatial sizes make the two the same mean). ReduceMean takes axes as an attribute
  // before opset 18 and as an input from 18 on.
  const reduce = (name: string, input: string): string => {
    const pooled = spatial ? b.op('GlobalAveragePool', [input], {}, `${name}_pool`) : input;
    return opset >= 18
      ? b.op('ReduceMean', [pooled, axesInput], { keepdims: 1 }, name)
      : b.op('ReduceMean', [pooled], { axes: [0], keepdims: 1 }, name);
  };
  const mean = reduce(`${prefix}/mean`, p.input);
  const centered = b.op('Sub', [p.input, mean], {}, `${prefix}/centered`);
  const squared = b.op('Mul', [centered, centered], {}, `${prefix}/squared`);
  const variance = reduce(`${prefix}/var`, squared);
  // gamma / sqrt(var + eps) on the channel vector, so that the full tensor sees one Mul and one Add.
  const varEps = b.op('Add', [variance, eps], {}, `${prefix}/var_eps`);
  const std = b.op('Sqrt', [varEps], {}, `${prefix}/std`);
  const scale = b.op('Div', [gamma, std], {}, `${prefix}/scale`);
  const scaled = b.op('Mul', [centered, scale], {}, `${prefix}/scaled`);
  b.node('Add', [scaled, beta], {}, { name: `${prefix}/shifted`, outputs: [p.output] });
  return { mean, variance };
}

/**
 * Builds the correction variant: each point normalised by batch statistics, its batch mean and
 * variance added as outputs (returned per point).
 */
function variantWithBatchStatistics(
  model: Model,
  points: readonly NormPoint[],
  replaced: ReadonlySet<string>,
): { variant: Model; outputs: PointOutputs[] } {
  const opset = defaultOpset(model);
  const b = new GraphBuilder(model.graph.name);
  for (const [name, tensor] of model.graph.initializers) b.weight(name, tensor);
  const pointIndex = new Map(points.map((p, i) => [p.output, i]));
  const outputs: PointOutputs[] = [];
  const raw = (value: string): string => {
    const i = pointIndex.get(value);
    return i === undefined ? value : points[i]!.input;
  };
  const addPoint = (value: string): void => {
    const i = pointIndex.get(value);
    if (i !== undefined)
      outputs[i] = addBatchNormalization(b, points[i]!, `zipit_norm_${i}`, opset);
  };
  for (const n of model.graph.nodes) {
    if (replaced.has(n.name)) {
      // A BatchNormalization node: its batch-statistics twin takes its place.
      addPoint(n.outputs[0]!);
      continue;
    }
    // A REPAIR point: the producer writes the raw value, the inserted nodes write the old name.
    b.append({ ...n, outputs: n.outputs.map(raw) });
    for (const o of n.outputs) addPoint(o);
  }
  for (const o of model.graph.outputs) b.output(o.name, o.shape, o.elemType);
  for (const o of outputs) {
    b.output(o.mean);
    b.output(o.variance);
  }
  return { variant: b.buildInto(model), outputs };
}

/** Per point: the mean and variance of its input over all the data, two ways. */
interface MeasuredMoments {
  /** Population mean and variance over every position of every image. */
  readonly mean: Float64Array;
  readonly variance: Float64Array;
  /** Average over batches of the unbiased batch variance: PyTorch's running_var with momentum=None. */
  readonly batchVariance: Float64Array;
}

/** Runs the variant over the data, accumulating each point's batch means and variances, weighted by batch size. */
async function measure(
  model: Model,
  points: readonly NormPoint[],
  replaced: ReadonlySet<string>,
  data: Batches,
  inputDims: readonly number[],
  options: RepairOptions,
): Promise<Result<MeasuredMoments[]>> {
  const { variant, outputs } = variantWithBatchStatistics(model, points, replaced);
  const session = await createSession(variant, { threads: options.threads ?? 2 });
  if (!session.ok) return session;
  const sums = points.map((p) => ({
    mean: new Float64Array(p.gamma.length),
    square: new Float64Array(p.gamma.length),
    batchVariance: new Float64Array(p.gamma.length),
  }));
  let images = 0;
  let seen = 0;
  try {
    const wanted = outputs.flatMap((o) => [o.mean, o.variance]);
    const input = session.value.inputNames[0]!;
    for (const batch of data) {
      const result = await session.value.run(
        { [input]: { dtype: 'float32', dims: [batch.size, ...inputDims], data: batch.input } },
        wanted,
      );
      for (const [i, p] of points.entries()) {
        const mean = result[outputs[i]!.mean]!.data;
        const variance = result[outputs[i]!.variance]!.data;
        const perBatch = batch.size * p.positions;
        const unbias = perBatch > 1 ? perBatch / (perBatch - 1) : 1;
        const s = sums[i]!;
        for (let c = 0; c < p.gamma.length; c++) {
          const m = mean[c]!;
          s.mean[c]! += batch.size * m;
          s.square[c]! += batch.size * (variance[c]! + m * m);
          s.batchVariance[c]! += batch.size * variance[c]! * unbias;
        }
      }
      images += batch.size;
      seen += 1;
      options.onProgress?.({ phase: 'repair', done: seen, total: data.numBatches });
    }
  } catch (error: unknown) {
    return runtimeFailure('onnxruntime failed during the statistics correction', error);
  } finally {
    await session.value.release();
  }
  const n = Math.max(1, images);
  return ok(
    sums.map((s) => {
      const mean = s.mean.map((v) => v / n);
      return {
        mean,
        variance: s.square.map((v, c) => Math.max(0, v / n - mean[c]! * mean[c]!)),
        batchVariance: s.batchVariance.map((v) => v / n),
      };
    }),
  );
}

function spatialPositions(graph: AnalyzedGraph, value: string, axis = 1): number {
  const shape = graph.states.get(value)?.shape ?? [];
  let size = 1;
  for (const [i, d] of shape.entries())
    if (i !== 0 && i !== axis) size *= typeof d === 'number' ? d : 1;
  return size;
}

/**
 * Resets every BatchNormalization's running statistics on the merge data: one pass of the
 * merged model with batch statistics, cumulative averages, as the reference does.
 */
export async function resetBatchNorm(
  merged: AnalyzedGraph,
  data: Batches,
  inputDims: readonly number[],
  options: RepairOptions = {},
): Promise<Result<Model>> {
  const model = merged.model;
  const bnNodes = model.graph.nodes.filter((n) => n.opType === 'BatchNormalization');
  const tensor = (name: string): Float32Array =>
    (model.graph.initializers.get(name) as Tensor<'float32'>).data;
  const points: NormPoint[] = bnNodes.map((n) => ({
    input: n.inputs[0]!,
    output: n.outputs[0]!,
    gamma: tensor(n.inputs[1]!),
    beta: tensor(n.inputs[2]!),
    epsilon: floatAttr(n, 'epsilon', 1e-5),
    rank: merged.states.get(n.inputs[0]!)?.shape.length ?? 4,
    positions: spatialPositions(merged, n.inputs[0]!),
  }));
  const measured = await measure(
    model,
    points,
    new Set(bnNodes.map((n) => n.name)),
    data,
    inputDims,
    options,
  );
  if (!measured.ok) return measured;
  const initializers = new Map(model.graph.initializers);
  bnNodes.forEach((n, i) => {
    initializers.set(
      n.inputs[3]!,
      float32Tensor([points[i]!.gamma.length], Float32Array.from(measured.value[i]!.mean)),
    );
    initializers.set(
      n.inputs[4]!,
      float32Tensor([points[i]!.gamma.length], Float32Array.from(measured.value[i]!.batchVariance)),
    );
  });
  return ok({ ...model, graph: { ...model.graph, initializers } });
}

/**
 * Per-channel target of a merged space: the merge-weighted average of its sources' statistics.
 *
 * NOTE: the std averages with |weight|: for the matchings (all weights positive) that is the
 * plain average; for a dense map with weights of both signs (CCA merge) it is the std of the
 * mix if its channels were perfectly correlated with the weights' signs, an upper bound, where
 * the signed sum would cancel or turn negative (CCA then scored 9% on PyTorch pair 0). Aiming at
 * model 0's own mean and std instead (CCA maps every model onto model 0's channels) was
 * measured on the held-out PyTorch pairs: 30.5 against 33.1 joint with REPAIR alone, 40.3
 * against 38.7 with the class-aware head and standardised logits; no clear winner, so the one
 * rule for every map stays (docs/RESULTS.md).
 */
function targetMoments(
  transform: SpaceTransform,
  sources: readonly ChannelMoments[],
): { mean: Float32Array; std: Float32Array } {
  const mean = new Float32Array(transform.mergedWidth);
  const std = new Float32Array(transform.mergedWidth);
  for (const [k, map] of transform.rows.entries()) {
    const s = sources[k]!.finalize();
    for (let e = 0; e < map.out.length; e++) {
      const c = map.out[e]!;
      const j = map.in[e]!;
      mean[c]! += map.weight[e]! * s.mean[j]!;
      std[c]! += Math.abs(map.weight[e]!) * Math.sqrt(s.variance[j]!);
    }
  }
  return { mean, std };
}

/** What REPAIR brings one producer's output to: per-channel mean and std. */
export interface RepairTarget {
  /** The producer's output value in the merged model. */
  readonly value: string;
  readonly mean: Float32Array;
  readonly std: Float32Array;
}

/** What REPAIR corrects, named as in the source models (model 0's names). */
export interface RepairPlan {
  /** The merged spaces: their producers' targets average their sources' statistics. */
  readonly spaces: readonly FeatureSpace[];
  /** With heads, the output of every weight op after the cut: its target is its own source's. */
  readonly headValues: readonly string[];
  /** Every value whose per-channel moments the statistics pass must record in each source. */
  readonly sourceValues: readonly string[];
}

/**
 * Plans REPAIR for a merge of `spaces` (of `source`, model 0), with heads after `stop` if given:
 * REPAIR needs each source's statistics at every producer it will correct.
 */
export function planRepair(
  source: AnalyzedGraph,
  spaces: readonly FeatureSpace[],
  stop: StopPoint | undefined,
): RepairPlan {
  const headValues =
    stop === undefined
      ? []
      : source.model.graph.nodes
          .slice(stop.position + 1)
          .filter((n) => source.roles.get(n.name) === 'weight')
          .map((n) => n.outputs[0]!);
  return {
    spaces,
    headValues,
    sourceValues: [...spaces.flatMap((s) => s.producerOutputs), ...headValues],
  };
}

/**
 * The targets of a planned REPAIR, named as in the merged model: a merged space's producer gets
 * the merge-weighted average of its sources' statistics; a head's producer (renamed into head k
 * by {@link headName}) gets its own source's. `sourceMoments[k]` holds source k's moments
 * (keyed by model 0's names) and `valueMaps[k]` its own names.
 */
export function repairTargets(
  plan: RepairPlan,
  transforms: ReadonlyMap<number, SpaceTransform>,
  sourceMoments: readonly ReadonlyMap<string, ChannelMoments>[],
  valueMaps: readonly ReadonlyMap<string, string>[],
): RepairTarget[] {
  const targets = plan.spaces.flatMap((s) =>
    mergedTargets(s, transforms.get(s.id)!, sourceMoments),
  );
  for (const value of plan.headValues) {
    for (const [k, moments] of sourceMoments.entries()) {
      const own = moments.get(value);
      if (own !== undefined)
        targets.push(sourceTarget(headName(k, valueMaps[k]!.get(value) ?? value), own));
    }
  }
  return targets;
}

/** The targets of a merged space's producers: the merge-weighted average of the sources' statistics. */
function mergedTargets(
  space: FeatureSpace,
  transform: SpaceTransform,
  sourceMoments: readonly ReadonlyMap<string, ChannelMoments>[],
): RepairTarget[] {
  const targets: RepairTarget[] = [];
  for (const value of space.producerOutputs) {
    const sources = sourceMoments.map((m) => m.get(value));
    if (sources.some((s) => s === undefined)) continue;
    targets.push({ value, ...targetMoments(transform, sources as ChannelMoments[]) });
  }
  return targets;
}

/** The target of an unmerged producer (a head's): its own source's statistics. */
function sourceTarget(value: string, moments: ChannelMoments): RepairTarget {
  const { mean, variance } = moments.finalize();
  return { value, mean: Float32Array.from(mean), std: Float32Array.from(variance, Math.sqrt) };
}

/**
 * REPAIR (Jordan et al. 2023) for models without BatchNormalization nodes: each target
 * producer's output is brought to its target mean and std, measured layer by layer in one pass
 * (batch statistics, like a BN reset), then the per-channel affine map is folded into the
 * producer's rows and bias (a MatMul, whose bias is a later Add, gets an Add of its own for the
 * shift). Producers that are not Conv, Gemm or MatMul with a weight are left alone.
 */
export async function repairProducers(
  merged: AnalyzedGraph,
  targets: readonly RepairTarget[],
  data: Batches,
  inputDims: readonly number[],
  options: RepairOptions = {},
): Promise<Result<{ model: Model; corrected: number }>> {
  const model = merged.model;
  const producers = new Map(model.graph.nodes.map((n) => [n.outputs[0]!, n]));
  const points: (NormPoint & { node: Node })[] = [];
  for (const target of targets) {
    const node = producers.get(target.value);
    if (node === undefined || !correctable(node, model)) continue;
    const rank = merged.states.get(target.value)?.shape.length ?? 4;
    const axis = node.opType === 'MatMul' ? rank - 1 : 1;
    points.push({
      node,
      input: `${target.value}/zipit_raw`,
      output: target.value,
      gamma: target.std,
      beta: target.mean,
      epsilon: 1e-5,
      rank,
      positions: spatialPositions(merged, target.value, axis),
      ...(axis !== 1 ? { axis } : {}),
    });
  }
  if (points.length === 0) return ok({ model, corrected: 0 });
  // NOTE: one pass measures every producer with everything upstream already normalised to its
  // target by batch statistics, as REPAIR's BatchNorm-reset formulation does. Per-batch
  // normalisation is not quite the folded affine map: with small or uneven batches the folded
  // model drifts slightly (merging a model with itself moved logits by 0.17 with batches of
  // 128/128/44 images and by 4e-4 with one batch of 300, on the resnet8 fixture).
  const measured = await measure(model, points, new Set(), data, inputDims, options);
  if (!measured.ok) return measured;
  return ok({ model: foldCorrections(model, points, measured.value), corrected: points.length });
}

/** Whether REPAIR can fold a correction into `node`: Conv, Gemm, or MatMul by a 2-D weight. */
function correctable(node: Node, model: Model): boolean {
  if (node.opType === 'Conv' || node.opType === 'Gemm') return true;
  return (
    node.opType === 'MatMul' &&
    model.graph.initializers.get(node.inputs[1] ?? '')?.dims.length === 2
  );
}

/** Folds per-channel affine maps that bring each point's measured moments to its target into the producers. */
function foldCorrections(
  model: Model,
  points: readonly (NormPoint & { node: Node })[],
  measured: readonly MeasuredMoments[],
): Model {
  const initializers = new Map(model.graph.initializers);
  const nodes = [...model.graph.nodes];
  for (const [i, p] of points.entries()) {
    const stats = measured[i]!;
    const width = p.gamma.length;
    const scale = new Float64Array(width);
    // NOTE: no epsilon here: a channel of small variance would otherwise be scaled visibly wrong.
    // A channel with no variance on the data is left unscaled and only shifted.
    for (let c = 0; c < width; c++)
      scale[c] = stats.variance[c]! > 1e-12 ? p.gamma[c]! / Math.sqrt(stats.variance[c]!) : 1;
    const index = nodes.findIndex((n) => n.name === p.node.name);
    const node = nodes[index]!;
    const weightName = node.inputs[1]!;
    const weight = initializers.get(weightName) as Tensor<'float32'>;
    const rowsAxis =
      node.opType === 'Gemm'
        ? gemmWeightAxes(node, weight.dims).outputAxis
        : node.opType === 'MatMul'
          ? 1
          : 0;
    initializers.set(weightName, scaleAxis(weight, rowsAxis, scale));
    const oldBias = addedBias(node, initializers, width);
    const bias = new Float32Array(width);
    for (let c = 0; c < width; c++)
      bias[c] = scale[c]! * (oldBias[c]! - stats.mean[c]!) + p.beta[c]!;
    if (node.opType === 'MatMul') {
      // MatMul has no bias input: the shift is an Add of its own right after it (the model's
      // own bias Add, if any, follows unchanged).
      const unshifted = `${p.output}/zipit_unshifted`;
      const shiftName = `${node.name}/zipit_shift`;
      initializers.set(shiftName, float32Tensor([width], bias));
      nodes.splice(
        index,
        1,
        { ...node, outputs: [unshifted] },
        {
          name: `${node.name}/zipit_repair`,
          opType: 'Add',
          domain: '',
          inputs: [unshifted, shiftName],
          outputs: [p.output],
          attributes: {},
        },
      );
      continue;
    }
    // The old bias is overwritten when it has one entry per channel; a broadcast scalar gets
    // a per-channel tensor of its own. Gemm's beta becomes 1 so that it adds exactly `bias`.
    const existing = node.inputs[2] ? initializers.get(node.inputs[2]) : undefined;
    const biasName =
      existing !== undefined && existing.data.length === width
        ? node.inputs[2]!
        : `${node.name}/zipit_bias`;
    initializers.set(biasName, float32Tensor([width], bias));
    const attributes =
      node.opType === 'Gemm' && floatAttr(node, 'beta', 1) !== 1
        ? { ...node.attributes, beta: { type: 'float' as const, value: 1 } }
        : node.attributes;
    nodes[index] = { ...node, inputs: [node.inputs[0]!, weightName, biasName], attributes };
  }
  return { ...model, graph: { ...model.graph, nodes, initializers } };
}

/**
 * What a producer adds to output channel c: Conv's B[c]; Gemm's beta * C, C broadcast over the
 * outputs (one entry per output, or one for all); 0 without a bias.
 */
function addedBias(
  node: Node,
  initializers: ReadonlyMap<string, Tensor>,
  width: number,
): Float64Array {
  const bias = new Float64Array(width);
  const name = node.inputs[2];
  const tensor = name ? (initializers.get(name) as Tensor<'float32'> | undefined) : undefined;
  if (tensor === undefined) return bias;
  const factor = node.opType === 'Gemm' ? floatAttr(node, 'beta', 1) : 1;
  const perChannel = tensor.data.length === width;
  for (let c = 0; c < width; c++) bias[c] = factor * tensor.data[perChannel ? c : 0]!;
  return bias;
}

/** Multiplies slice c of `axis` by scale[c]. */
function scaleAxis(
  tensor: Tensor<'float32'>,
  axis: number,
  scale: Float64Array,
): Tensor<'float32'> {
  let inner = 1;
  for (let i = axis + 1; i < tensor.dims.length; i++) inner *= tensor.dims[i]!;
  const size = tensor.dims[axis]!;
  const data = Float32Array.from(tensor.data);
  for (let i = 0; i < data.length; i++) data[i] = data[i]! * scale[Math.floor(i / inner) % size]!;
  return { dtype: 'float32', dims: tensor.dims, data };
}
