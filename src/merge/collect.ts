/** @file The statistics pass: run K models on the same batches, accumulate each space's stacked covariance. */
import { fail, ok, type Result } from '../errors.js';
import type { Batches } from '../data/dataset.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { FeatureSpace } from '../graph/spaces.js';
import type { ProgressListener } from '../progress.js';
import { accumulateBatch, createGramKernel } from '../runtime/gram.js';
import { createSession, withCapturedOutputs, type Session } from '../runtime/session.js';
import type { Tensor } from '../onnx/tensor.js';
import { ChannelMoments } from '../stats/channel-moments.js';
import { CovarianceAccumulator } from '../stats/covariance.js';

/** What one pass over the merge data produces. */
export interface CollectedStatistics {
  /** Per mergeable space id: the K-stacked covariance accumulator. */
  readonly covariance: Map<number, CovarianceAccumulator>;
  /** Per model, per value name (model 0's names): per-channel moments of the requested values. */
  readonly moments: Map<string, ChannelMoments>[];
}

/** Options of the pass. */
export interface CollectOptions {
  readonly threads?: number;
  readonly onProgress?: ProgressListener;
  /** Extra values (model 0's names) whose per-channel moments to record in every model. */
  readonly momentValues?: readonly string[];
  /** Skip the covariance (statistics were precomputed): only `momentValues` are recorded. */
  readonly skipCovariance?: boolean;
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
    let done = 0;
    for (const batch of data) {
      const outputs: Record<string, Tensor<'float32'>>[] = [];
      for (const [k, session] of sessions.entries()) {
        const feeds = {
          [session.inputNames[0] ?? inputName]: {
            dtype: 'float32' as const,
            dims: [batch.size, ...inputDims],
            data: batch.input,
          },
        };
        outputs.push(await session.run(feeds));
        void k;
      }
      for (const space of sites) {
        const activations = graphs.map((_, k) => {
          const tensor = outputs[k]![valueMaps[k]!.get(space.site!.value) ?? space.site!.value]!;
          return sliceChannels(tensor, space.site!.offset, space.width);
        });
        const added = await accumulateBatch(kernel, covariance.get(space.id)!, activations);
        if (!added.ok)
          return fail(added.reason, `Space ${space.id} (${space.site!.value}): ${added.message}`);
      }
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
      done += 1;
      options.onProgress?.({ phase: 'statistics', done, total: data.numBatches });
    }
  } catch (error: unknown) {
    const text = error instanceof Error ? error.message : String(error);
    return fail(
      'runtime-error',
      `onnxruntime failed while collecting statistics: ${text.split('\n')[0]}`,
    );
  } finally {
    for (const s of sessions) await s.release();
    await kernel.release();
  }
  return ok({ covariance, moments });
}
