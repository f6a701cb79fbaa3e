/** @file Per-batch sum and Gram matrix of K models' stacked activations, as GEMMs on onnxruntime. */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import type { Model } from '../onnx/model.js';
import { float32Tensor, int64Tensor, type Tensor } from '../onnx/tensor.js';
import { activationLayout, type ActivationLayout } from '../tensor/activations.js';
import { allFinite } from '../tensor/finite.js';
import { createSession, type RunOptions, type Session } from './session.js';

/**
 * The stacked sum and Gram of one space's K*C features (model-major: model k's channel c is
 * row k*C + c) about a shift, in float32: `sum` [K*C] and `gram` [K*C, K*C] row-major.
 */
export interface StackedMoments {
  readonly sum: Float32Array;
  readonly gram: Float32Array;
}

/**
 * What {@link GramKernel} hands back for one batch: the {@link StackedMoments} of its `count`
 * samples about `shift`. Plain arrays: the statistics layer accumulates them (its
 * `BatchMoments` has this shape), the runtime keeps no statistics.
 */
export interface GramMoments extends StackedMoments {
  readonly count: number;
  readonly shift: Float32Array;
}

/**
 * Computes {@link GramMoments} of one batch on onnxruntime: for K activation tensors
 * `[N, C, ...spatial]` and a shift of K*C values, the sum and Gram of the stacked features
 * minus the shift. One session per input shape (K, dims) and NaN mode, built on first use.
 */
export interface GramKernel {
  /** The moments of one batch about `shift` (K*C values, model-major). */
  moments(
    activations: readonly Tensor<'float32'>[],
    shift: Float32Array,
  ): Promise<Result<GramMoments>>;
  /** Releases every cached session; the kernel must not be used afterwards. */
  release(): Promise<void>;
}

/** Options of {@link createGramKernel}. */
export interface GramKernelOptions extends RunOptions {
  /**
   * The layout for activations of rank >= 3 (see {@link GramLayout}); by default chosen per
   * shape. Forcing one is for benchmarks.
   */
  readonly layout?: 'rows' | 'per-sample';
}

/** Which graph to run: the fast one, or one that first replaces NaN by 0. */
export type NanMode = 'fast' | 'nan-safe';

/**
 * A {@link GramKernel} with onnxruntime's intra-op threads from `options` (default 2).
 *
 * NOTE: the graph computes one GEMM per block pair k <= l, `G_kl = X_k X_l^T` with
 * X_k = x_k - shift_k, and the blocks below the diagonal are mirrored in JS. Against one GEMM
 * on the concatenated [K*C, P] this skips the Concat copy and the K(K-1)/2 mirrored blocks (a
 * quarter of the flops for K = 2). In a quiet prototype run it was 20-25% faster at every
 * ResNet-20x4 stage; under heavy load from other processes bench/stats.ts sees the two on par.
 *
 * NOTE: NaN → 0 costs an IsNaN and a Where pass over the whole batch, which measured up to
 * 2.5x the time of the GEMMs at width 64. NaN propagates into the sums, so the fast graph
 * runs first and only a batch whose sums or Gram come out non-finite is rerun through the
 * NaN-safe graph. If they are still not finite, the activations held ±Infinity (or overflowed
 * float32 in the GEMM): that is a failure, never silently folded into the statistics.
 *
 * NOTE: float32 inside a batch, float64 across batches. Each Gram entry is a float32 dot
 * product over the batch's P positions of centred values; its rounding error is at most about
 * P * 6e-8 * Σ|x_i y_i| and in practice about sqrt(P) * 6e-8 * Σ|x_i y_i| (random-walk
 * rounding; MLAS also sums the P axis in panels, which shortens the walk). About the shift,
 * Σ|x_i y_i| is a small multiple of P std_i std_j, so in correlation units the error is about
 * sqrt(P) * 6e-8 <= 2e-5 for P = 1e5, and bench/stats.ts measures 2e-6 to 3e-6 against a
 * float64 two-pass reference on ReLU-like data at P = 6272, 25088 and 100352 (two batches).
 * Batches are added in float64, so these independent per-batch errors average out instead of
 * growing with the number of batches. For matching, correlations differing by 1e-5 are ties.
 */
export function createGramKernel(options: GramKernelOptions = {}): GramKernel {
  const sessions = new Map<string, Promise<Result<Session>>>();

  async function sessionFor(layout: ActivationLayout, mode: NanMode): Promise<Result<Session>> {
    const key = `${mode} ${layout.numModels} [${layout.dims.join(',')}]`;
    let session = sessions.get(key);
    if (session === undefined) {
      session = createSession(gramGraph(layout, mode, options.layout), {
        threads: options.threads ?? 2,
      });
      sessions.set(key, session);
    }
    return session;
  }

  async function run(
    layout: ActivationLayout,
    mode: NanMode,
    activations: readonly Tensor<'float32'>[],
    shift: Float32Array,
  ): Promise<Result<GramMoments>> {
    const session = await sessionFor(layout, mode);
    if (!session.ok) return session;
    const { numModels, width } = layout;
    const feeds: Record<string, Tensor<'float32'>> = {
      shift: float32Tensor([shift.length], shift),
    };
    for (const [k, a] of activations.entries()) feeds[`x${k}`] = a;
    let outputs: Record<string, Tensor<'float32'>>;
    try {
      outputs = await session.value.run(feeds);
    } catch (error: unknown) {
      return runtimeFailure('onnxruntime failed computing the Gram matrix', error);
    }
    const { sum, gram } = stackMoments(outputs, '', numModels, width);
    return ok({ count: layout.count, shift, sum, gram });
  }

  return {
    async moments(activations, shift) {
      const layout = activationLayout(activations);
      if (typeof layout === 'string') return fail('bad-shape', layout);
      const size = layout.numModels * layout.width;
      if (shift.length !== size) {
        return fail('bad-shape', `Expected a shift of ${size} values (K*C), got ${shift.length}`);
      }
      const fast = await run(layout, 'fast', activations, shift);
      if (!fast.ok || (allFinite(fast.value.sum) && allFinite(fast.value.gram))) return fast;
      const safe = await run(layout, 'nan-safe', activations, shift);
      if (!safe.ok || (allFinite(safe.value.sum) && allFinite(safe.value.gram))) return safe;
      return fail(
        'bad-statistics',
        `Expected finite activations, got infinite values (or float32 overflow) in a batch of shape [${layout.dims.join(', ')}]`,
      );
    },
    async release() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const session of await Promise.all(all)) if (session.ok) await session.value.release();
    },
  };
}

/**
 * How a graph lays out each model's centred features for its GEMMs: `columns` [P, C] and
 * Gemm(transA) for `[N, C]` (no copy); `rows` [C, P] through one Transpose, Gemm(transB); and
 * `per-sample` [N, C, S], a batched MatMul per sample summed over N, which needs no big
 * transpose.
 *
 * NOTE: `per-sample` is chosen when the spatial size S is at least 4x the width C. Measured on
 * this project's 2-core machine (bench/stats.ts, K = 2, N = 128): at C = 64, S = 28x28 it beat
 * `rows` (141 vs 198 ms per batch, both under the same load), at C = 128, S = 14x14 it lost
 * slightly and at C = 256, S = 7x7 clearly; its [N, C, C] partial Grams grow with N*C^2.
 */
export type GramLayout = 'columns' | 'rows' | 'per-sample';

/** The layout a kernel uses for activations of this shape, unless `forced` (rank >= 3 only). */
export function gramLayout(
  layout: ActivationLayout,
  forced?: GramKernelOptions['layout'],
): GramLayout {
  if (layout.dims.length === 2) return 'columns';
  if (forced !== undefined) return forced;
  return layout.spatial >= 4 * layout.width ? 'per-sample' : 'rows';
}

/** The ONNX graph of one (K, dims, NaN mode); outputs `sum{k}` [C] and `gram{k}_{l}` [C, C], k <= l. */
function gramGraph(
  layout: ActivationLayout,
  mode: NanMode,
  forced: GramKernelOptions['layout'],
): Model {
  const b = new GraphBuilder(`gram_${mode}_${gramLayout(layout, forced)}`);
  const xs = Array.from({ length: layout.numModels }, (_, k) => b.input(`x${k}`, layout.dims));
  emitGram(b, xs, layout, { mode, forced, prefix: '' });
  return b.build();
}

/** How {@link emitGram} names and builds one space's moments. */
export interface GramEmitOptions {
  readonly mode: NanMode;
  readonly forced?: GramKernelOptions['layout'];
  /**
   * Prefix of every name the moments add: input `{prefix}shift` [K*C], outputs
   * `{prefix}sum{k}` [C] and `{prefix}gram{k}_{l}` [C, C] (k <= l), and their constants.
   */
  readonly prefix: string;
}

/**
 * Adds to `b` the sums and Gram blocks of K activation values `xs` of shape `layout.dims`
 * about a shift fed as a graph input, and declares them as graph outputs. The batch size is
 * read from the activations, so one graph serves any batch size.
 */
export function emitGram(
  b: GraphBuilder,
  xs: readonly string[],
  layout: ActivationLayout,
  options: GramEmitOptions,
): void {
  const { numModels, width, dims } = layout;
  const { mode, prefix } = options;
  const rank = dims.length;
  const kind = gramLayout(layout, options.forced);
  const shift = b.input(`${prefix}shift`, [numModels * width]);
  const zero =
    mode === 'nan-safe' ? b.weight(`${prefix}zero`, float32Tensor([], new Float32Array([0]))) : '';
  const spatialOnes = Array.from({ length: rank - 2 }, () => 1);
  const shiftShape = b.weight(
    `${prefix}shift_shape`,
    int64Tensor([rank], [1, width, ...spatialOnes]),
  );
  // Reshape's 0 copies the batch size from the activations.
  const featureShape =
    kind === 'rows'
      ? b.weight(`${prefix}rows_shape`, int64Tensor([2], [width, -1]))
      : kind === 'per-sample'
        ? b.weight(`${prefix}per_sample_shape`, int64Tensor([3], [0, width, -1]))
        : '';
  const sumAxes = { columns: [0], rows: [1], 'per-sample': [0, 2] }[kind];
  const sumAxesName = b.weight(`${prefix}sum_axes`, int64Tensor([sumAxes.length], sumAxes));
  const features: string[] = [];
  for (const [k, input] of xs.entries()) {
    const x = mode === 'nan-safe' ? b.op('Where', [b.op('IsNaN', [input]), zero, input]) : input;
    const start = b.weight(`${prefix}shift_start_${k}`, int64Tensor([1], [k * width]));
    const end = b.weight(`${prefix}shift_end_${k}`, int64Tensor([1], [(k + 1) * width]));
    const shiftK = b.op('Reshape', [b.op('Slice', [shift, start, end]), shiftShape]);
    const centred = b.op('Sub', [x, shiftK]);
    if (kind === 'columns') {
      features.push(centred); // [N, C]
    } else if (kind === 'per-sample') {
      features.push(b.op('Reshape', [centred, featureShape])); // [N, C, prod(spatial)]
    } else {
      const perm = [1, 0, ...spatialOnes.map((_, i) => i + 2)];
      features.push(b.op('Reshape', [b.op('Transpose', [centred], { perm }), featureShape])); // [C, N*prod(spatial)]
    }
  }
  const batchAxis =
    kind === 'per-sample' ? b.weight(`${prefix}batch_axis`, int64Tensor([1], [0])) : '';
  for (let k = 0; k < numModels; k++) {
    b.op('ReduceSum', [features[k]!, sumAxesName], { keepdims: 0 }, `${prefix}sum${k}`);
    b.output(`${prefix}sum${k}`, [width]);
    for (let l = k; l < numModels; l++) {
      const name = `${prefix}gram${k}_${l}`;
      if (kind === 'per-sample') {
        // onnxruntime fuses this Transpose into the MatMul (FusedMatMul transB): no copy.
        const perSample = b.op('MatMul', [
          features[k]!,
          b.op('Transpose', [features[l]!], { perm: [0, 2, 1] }),
        ]); // [N, C, C]
        b.op('ReduceSum', [perSample, batchAxis], { keepdims: 0 }, name);
      } else {
        b.op(
          'Gemm',
          [features[k]!, features[l]!],
          kind === 'columns' ? { transA: 1 } : { transB: 1 },
          name,
        );
      }
      b.output(name, [width, width]);
    }
  }
}

/**
 * Assembles the stacked sum and Gram (K*C, model-major) of one space from a run's outputs
 * named as {@link emitGram} names them; the blocks below the diagonal are mirrored.
 */
export function stackMoments(
  outputs: Readonly<Record<string, Tensor<'float32'>>>,
  prefix: string,
  numModels: number,
  width: number,
): StackedMoments {
  const size = numModels * width;
  const sum = new Float32Array(size);
  const gram = new Float32Array(size * size);
  for (let k = 0; k < numModels; k++) {
    sum.set(outputs[`${prefix}sum${k}`]!.data, k * width);
    for (let l = k; l < numModels; l++) {
      const block = outputs[`${prefix}gram${k}_${l}`]!.data; // [C, C], rows model k, columns model l
      for (let i = 0; i < width; i++) {
        const row = (k * width + i) * size + l * width;
        gram.set(block.subarray(i * width, (i + 1) * width), row);
        if (l !== k) {
          for (let j = 0; j < width; j++)
            gram[(l * width + j) * size + k * width + i] = block[i * width + j]!;
        }
      }
    }
  }
  return { sum, gram };
}
