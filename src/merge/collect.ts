/** @file The statistics pass: run K models on the same batches, accumulate each space's stacked covariance.
 * Here the runtime (which computes each batch's moments) meets stats (which accumulates them);
 * neither layer imports the other.
 */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import { channelsFirstPerm } from '../graph/space-layouts.js';
import type { FeatureSpace } from '../graph/spaces.js';
import type { ProgressListener } from '../progress.js';
import { createGramKernel, type GramKernel } from '../runtime/gram.js';
import {
  canFuse,
  createFusedStatistics,
  type FusedStatistics,
} from '../runtime/fused-statistics.js';
import { createSession, withCapturedOutputs, type Session } from '../runtime/session.js';
import type { Model, Node } from '../onnx/model.js';
import type { Tensor } from '../onnx/tensor.js';
import { channelMeans } from '../stats/activations.js';
import { ChannelMoments } from '../stats/channel-moments.js';
import { CovarianceAccumulator } from '../stats/covariance.js';
import { activationLayout } from '../tensor/activations.js';

/** What one pass over the merge data produces. */
export interface CollectedStatistics {
  /** Per mergeable space id: the K-stacked covariance accumulator. */
  readonly covariance: Map<number, CovarianceAccumulator>;
  /** Per model, per value name (model 0's names): per-channel moments of the requested values. */
  readonly moments: Map<string, ChannelMoments>[];
  /** How many batches went through the fused session (the rest through captured activations). */
  readonly fusedBatches: number;
}

/** Options of the pass. */
export interface CollectOptions {
  readonly threads?: number;
  readonly onProgress?: ProgressListener;
  /** Extra values (model 0's names) whose per-channel moments to record in every model. */
  readonly momentValues?: readonly string[];
  /** The channel axis of a moment value when it is not 1 (a transformer's [N, T, C]). */
  readonly momentAxes?: ReadonlyMap<string, number>;
  /** Skip the covariance (statistics were precomputed): only `momentValues` are recorded. */
  readonly skipCovariance?: boolean;
  /**
   * Default true: after the first batch, run all models and the moments in one session
   * (runtime/fused-statistics.ts). False captures every batch's activations instead; the
   * statistics agree to float32 rounding either way.
   */
  readonly fused?: boolean;
}

/**
 * Adds one batch of K activation tensors to `accumulator`: `kernel` computes the batch's
 * moments about the accumulator's shift and the accumulator adds them. The first batch's
 * channel means (float64, rounded to float32 for the kernel) become the accumulator's shift.
 */
export async function accumulateBatch(
  kernel: GramKernel,
  accumulator: CovarianceAccumulator,
  activations: readonly Tensor<'float32'>[],
): Promise<Result<void>> {
  const layout = activationLayout(activations);
  if (typeof layout === 'string') return fail('bad-shape', layout);
  if (layout.numModels !== accumulator.numModels || layout.width !== accumulator.width) {
    return fail(
      'bad-shape',
      `Expected activations of ${accumulator.numModels} models x ${accumulator.width} channels, got ${layout.numModels} x ${layout.width}`,
    );
  }
  let shift = accumulator.shift;
  if (shift === undefined) {
    const means = channelMeans(activations);
    if (!means.ok) return means;
    shift = means.value;
  }
  const moments = await kernel.moments(activations, Float32Array.from(shift));
  if (!moments.ok) return moments;
  accumulator.addBatch(moments.value);
  return ok(undefined);
}

/** Selects channels [offset, offset + width) of an [N, C, ...] tensor (a space inside a concat). */
function sliceChannels(
  tensor: Tensor<'float32'>,
  offset: number,
  width: number,
): Tensor<'float32'> {
  const [batch, channels] = tensor.dims as [number, number];
  if (offset === 0 && width === channels) return tensor;
  let spatial = 1;
  for (let i = 2; i < tensor.dims.length; i++) spatial *= tensor.dims[i]!;
  const data = new Float32Array(batch * width * spatial);
  for (let n = 0; n < batch; n++) {
    data.set(
      tensor.data.subarray(
        (n * channels + offset) * spatial,
        (n * channels + offset + width) * spatial,
      ),
      n * width * spatial,
    );
  }
  return { dtype: 'float32', dims: [batch, width, ...tensor.dims.slice(2)], data };
}

/** One place a space is read: the space and one of its sites. */
interface SiteReading {
  readonly space: FeatureSpace;
  readonly site: NonNullable<FeatureSpace['site']>;
}

/** A value read through a Transpose to channels-first ([N, C, ...]): its own name, channel axis and rank. */
interface Reading {
  readonly value: string;
  readonly axis: number;
  readonly rank: number;
}

/** The name under which a value with its channels on `axis` is read channels-first. */
function channelsFirstName(value: string, axis: number): string {
  return axis === 1 ? value : `${value}/zipit_channels_first`;
}

/**
 * The model with a Transpose to channels-first ([N, C, ...]) of every reading whose channels are
 * on another axis than 1 (a transformer's [N, T, C]), named by {@link channelsFirstName}.
 */
function channelsFirst(model: Model, readings: readonly Reading[]): Model {
  const added = new Map<string, Node>();
  for (const { value, axis, rank } of readings) {
    const name = channelsFirstName(value, axis);
    if (axis === 1 || added.has(name)) continue;
    added.set(name, {
      name,
      opType: 'Transpose',
      domain: '',
      inputs: [value],
      outputs: [name],
      attributes: { perm: { type: 'ints', value: channelsFirstPerm(rank, axis) } },
    });
  }
  if (added.size === 0) return model;
  return { ...model, graph: { ...model.graph, nodes: [...model.graph.nodes, ...added.values()] } };
}

/**
 * Runs every model on each batch and accumulates, per space, F = [F_1; ...; F_K] statistics at
 * the space's site (ALGORITHM.md "Statistics"). Memory is independent of the number of samples.
 */
export async function collectStatistics(
  graphs: readonly AnalyzedGraph[],
  valueMaps: readonly ReadonlyMap<string, string>[],
  spaces: readonly FeatureSpace[],
  data: Batches,
  inputDims: readonly number[],
  options: CollectOptions = {},
): Promise<Result<CollectedStatistics>> {
  const numModels = graphs.length;
  const sites = options.skipCovariance ? [] : spaces.filter((s) => s.site !== undefined);
  // Where each space is read: its site, and further sites whose observations count as well (the
  // keys of a Q/K space beside its queries).
  const readings = sites.flatMap((space) =>
    [space.site!, ...(space.alsoAt ?? [])].map((site) => ({ space, site })),
  );
  const momentValues = options.momentValues ?? [];
  const sessions: Session[] = [];
  const kernel = createGramKernel({ threads: options.threads ?? 2 });
  const covariance = new Map(
    sites.map((s) => [s.id, new CovarianceAccumulator(numModels, s.width)]),
  );
  const moments = graphs.map(() => new Map<string, ChannelMoments>());
  let fused: FusedStatistics | undefined;
  let fusedBatches = 0;
  // Values with their channels on another axis than 1 are read through a Transpose to [N, C, ...].
  const rankOf = (value: string): number => graphs[0]!.states.get(value)?.shape.length ?? 2;
  const siteValue = ({ site }: SiteReading, k: number): string =>
    channelsFirstName(valueMaps[k]!.get(site.value) ?? site.value, site.axis ?? 1);
  const momentAxis = (value: string): number => options.momentAxes?.get(value) ?? 1;
  const momentValue = (value: string, k: number): string =>
    channelsFirstName(valueMaps[k]!.get(value) ?? value, momentAxis(value));
  const models = graphs.map((g, k) =>
    channelsFirst(g.model, [
      ...readings.map(({ site }) => ({
        value: valueMaps[k]!.get(site.value) ?? site.value,
        axis: site.axis ?? 1,
        rank: rankOf(site.value),
      })),
      ...momentValues.map((v) => ({
        value: valueMaps[k]!.get(v) ?? v,
        axis: momentAxis(v),
        rank: rankOf(v),
      })),
    ]),
  );
  try {
    for (const [k, model] of models.entries()) {
      const captured = [
        ...new Set([
          ...readings.map((r) => siteValue(r, k)),
          ...momentValues.map((v) => momentValue(v, k)),
        ]),
      ];
      const session = await createSession(withCapturedOutputs(model, captured), {
        threads: options.threads ?? 2,
      });
      if (!session.ok) return session;
      sessions.push(session.value);
    }
    const inputName = sessions[0]!.inputNames[0]!;
    const addMoments = (outputs: readonly Record<string, Tensor<'float32'>>[]): void => {
      for (const value of momentValues) {
        for (let k = 0; k < numModels; k++) {
          const tensor = outputs[k]![momentValue(value, k)]!;
          let m = moments[k]!.get(value);
          if (m === undefined) {
            m = new ChannelMoments(tensor.dims[1]!);
            moments[k]!.set(value, m);
          }
          m.add(tensor.dims, tensor.data);
        }
      }
    };
    // After the first batch (which sets every space's shift), batches go through one fused
    // session when the models allow it; a batch whose moments are not finite is redone below.
    // One batch has nothing to fuse: the first batch always goes through capture.
    let canUseFused =
      options.fused !== false &&
      sites.length > 0 &&
      data.numBatches > 1 &&
      canFuse(graphs.map((g) => g.model));
    let spatial: number[] = [];
    let done = 0;
    for (const batch of data) {
      const input: Tensor<'float32'> = {
        dtype: 'float32',
        dims: [batch.size, ...inputDims],
        data: batch.input,
      };
      if (fused !== undefined) {
        const shifts = readings.map((r) => Float32Array.from(covariance.get(r.space.id)!.shift!));
        const result = await fused.run(input, shifts);
        if (!result.ok) {
          // The captured path below does the same work; use it from now on.
          await fused.release();
          fused = undefined;
          canUseFused = false;
        } else if (result.value.moments.every((m) => m !== undefined)) {
          const { moments: siteMoments, extra } = result.value;
          for (const [i, { space }] of readings.entries()) {
            const { sum, gram } = siteMoments[i]!;
            const count = batch.size * spatial[i]!;
            covariance.get(space.id)!.addBatch({ count, shift: shifts[i]!, sum, gram });
          }
          addMoments(extra);
          fusedBatches += 1;
          done += 1;
          options.onProgress?.({ phase: 'statistics', done, total: data.numBatches });
          continue;
        }
      }
      const outputs: Record<string, Tensor<'float32'>>[] = [];
      for (const session of sessions) {
        outputs.push(await session.run({ [session.inputNames[0] ?? inputName]: input }));
      }
      const activationsOf = (reading: SiteReading): Tensor<'float32'>[] =>
        graphs.map((_, k) => {
          const tensor = outputs[k]![siteValue(reading, k)]!;
          return sliceChannels(tensor, reading.site.offset, reading.space.width);
        });
      for (const reading of readings) {
        const { space, site } = reading;
        const added = await accumulateBatch(
          kernel,
          covariance.get(space.id)!,
          activationsOf(reading),
        );
        if (!added.ok)
          return fail(added.reason, `Space ${space.id} (${site.value}): ${added.message}`);
      }
      addMoments(outputs);
      if (canUseFused && fused === undefined) {
        const fusedSites = readings.map((reading) => {
          const { space, site } = reading;
          const full = outputs[0]![siteValue(reading, 0)]!;
          return {
            values: graphs.map((_, k) => siteValue(reading, k)),
            offset: site.offset,
            width: space.width,
            channels: full.dims[1]!,
            dims: [full.dims[0]!, space.width, ...full.dims.slice(2)],
          };
        });
        spatial = fusedSites.map((s) => s.dims.slice(2).reduce((a, d) => a * d, 1));
        const created = await createFusedStatistics(
          models,
          fusedSites,
          graphs.map((_, k) => momentValues.map((v) => momentValue(v, k))),
          ['N', ...inputDims],
          { threads: options.threads ?? 2 },
        );
        if (created.ok) fused = created.value;
        else canUseFused = false;
      }
      done += 1;
      options.onProgress?.({ phase: 'statistics', done, total: data.numBatches });
    }
  } catch (error: unknown) {
    return runtimeFailure('onnxruntime failed while collecting statistics', error);
  } finally {
    for (const s of sessions) await s.release();
    await fused?.release();
    await kernel.release();
  }
  return ok({ covariance, moments, fusedBatches });
}
