/** @file The statistics pass: run K models on the same batches, accumulate each space's stacked covariance.
 * Here the runtime (which computes each batch's moments) meets stats (which accumulates them);
 * neither layer imports the other.
 */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace } from '../graph/spaces.js';
import type { ProgressListener } from '../progress.js';
import { createGramKernel, type GramKernel } from '../runtime/gram.js';
import {
  canFuse,
  createFusedStatistics,
  type FusedStatistics,
} from '../runtime/fused-statistics.js';
import { createSession, withCapturedOutputs, type Session } from '../runtime/session.js';
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
  const momentValues = options.momentValues ?? [];
  const sessions: Session[] = [];
  const kernel = createGramKernel({ threads: options.threads ?? 2 });
  const covariance = new Map(
    sites.map((s) => [s.id, new CovarianceAccumulator(numModels, s.width)]),
  );
  const moments = graphs.map(() => new Map<string, ChannelMoments>());
  let fused: FusedStatistics | undefined;
  let fusedBatches = 0;
  try {
    for (const [k, graph] of graphs.entries()) {
      const own = (name: string): string => valueMaps[k]!.get(name) ?? name;
      const captured = [
        ...new Set([...sites.map((s) => own(s.site!.value)), ...momentValues.map(own)]),
      ];
      const session = await createSession(withCapturedOutputs(graph.model, captured), {
        threads: options.threads ?? 2,
      });
      if (!session.ok) return session;
      sessions.push(session.value);
    }
    const inputName = sessions[0]!.inputNames[0]!;
    const addMoments = (outputs: readonly Record<string, Tensor<'float32'>>[]): void => {
      for (const value of momentValues) {
        for (let k = 0; k < numModels; k++) {
          const tensor = outputs[k]![valueMaps[k]!.get(value) ?? value]!;
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
        const shifts = sites.map((s) => Float32Array.from(covariance.get(s.id)!.shift!));
        const result = await fused.run(input, shifts);
        if (!result.ok) {
          // The captured path below does the same work; use it from now on.
          await fused.release();
          fused = undefined;
          canUseFused = false;
        } else if (result.value.moments.every((m) => m !== undefined)) {
          const { moments: siteMoments, extra } = result.value;
          for (const [i, space] of sites.entries()) {
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
      const activationsOf = (space: FeatureSpace): Tensor<'float32'>[] =>
        graphs.map((_, k) => {
          const tensor = outputs[k]![valueMaps[k]!.get(space.site!.value) ?? space.site!.value]!;
          return sliceChannels(tensor, space.site!.offset, space.width);
        });
      for (const space of sites) {
        const added = await accumulateBatch(
          kernel,
          covariance.get(space.id)!,
          activationsOf(space),
        );
        if (!added.ok)
          return fail(added.reason, `Space ${space.id} (${space.site!.value}): ${added.message}`);
      }
      addMoments(outputs);
      if (canUseFused && fused === undefined) {
        const fusedSites = sites.map((space) => {
          const value = space.site!.value;
          const full = outputs[0]![valueMaps[0]!.get(value) ?? value]!;
          return {
            values: graphs.map((_, k) => valueMaps[k]!.get(value) ?? value),
            offset: space.site!.offset,
            width: space.width,
            channels: full.dims[1]!,
            dims: [full.dims[0]!, space.width, ...full.dims.slice(2)],
          };
        });
        spatial = fusedSites.map((s) => s.dims.slice(2).reduce((a, d) => a * d, 1));
        const created = await createFusedStatistics(
          graphs.map((g) => g.model),
          fusedSites,
          graphs.map((_, k) => momentValues.map((v) => valueMaps[k]!.get(v) ?? v)),
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
