/** @file Benchmark: statistics throughput on ResNet-20x4-sized feature spaces vs this machine's GEMM peak. */
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { GraphBuilder } from '../src/onnx/builder.js';
import { float32Tensor, int64Tensor, type Tensor } from '../src/onnx/tensor.js';
import { accumulateBatch } from '../src/merge/collect.js';
import { createGramKernel, gramLayout } from '../src/runtime/gram.js';
import { createSession, type Session } from '../src/runtime/session.js';
import { channelMeans } from '../src/stats/activations.js';
import { CovarianceAccumulator } from '../src/stats/covariance.js';
import { activationLayout } from '../src/tensor/activations.js';
import { Random } from '../src/tensor/random.js';
import {
  covarianceError,
  maxAbsDifference,
  randomBatch,
  referenceStatistics,
} from '../test/stats/reference.js';

const THREADS = 2;
const PEAK_SIZE = 2048;
/** Round-robin rounds; best-of is what survives load from other processes. */
const ROUNDS = 6;
const NUM_MODELS = 2;
const BATCH = 128;
/** ResNet-20 x4 on 28x28 inputs: stage widths 64/128/256 at 28x28, 14x14, 7x7. */
const STAGES = [
  { width: 64, side: 28 },
  { width: 128, side: 14 },
  { width: 256, side: 7 },
] as const;

async function session(build: (b: GraphBuilder) => void): Promise<Session> {
  const b = new GraphBuilder('bench');
  build(b);
  const created = await createSession(b.build(), { threads: THREADS });
  if (!created.ok) throw new Error(created.message);
  return created.value;
}

/** A session running one n x n x n float32 MatMul, with its feeds: the GEMM peak. */
async function gemmSession(
  n: number,
): Promise<{ session: Session; feeds: Record<string, Tensor<'float32'>> }> {
  const s = await session((b) => {
    b.input('a', [n, n]);
    b.input('b', [n, n]);
    b.op('MatMul', ['a', 'b'], {}, 'c');
    b.output('c');
  });
  const random = new Random(0);
  const a = float32Tensor(
    [n, n],
    Float32Array.from({ length: n * n }, () => random.uniform()),
  );
  return { session: s, feeds: { a, b: a } };
}

/**
 * The layouts gram.ts does not use, for comparison: one Gemm on the concatenated [Kn, P]
 * ('concat-rows', X X^T) or [P, Kn] ('concat-columns', NHWC then A^T A), both with the shift.
 */
async function alternative(
  layout: 'concat-rows' | 'concat-columns',
  dims: readonly number[],
): Promise<Session> {
  const kn = NUM_MODELS * dims[1]!;
  return session((b) => {
    const xs = Array.from({ length: NUM_MODELS }, (_, k) => b.input(`x${k}`, dims));
    const shift = b.op('Reshape', [
      b.input('shift', [kn]),
      b.weight('shift_shape', int64Tensor([4], [1, kn, 1, 1])),
    ]);
    const centred = b.op('Sub', [b.op('Concat', xs, { axis: 1 }), shift]); // [N, Kn, H, W]
    if (layout === 'concat-rows') {
      const rows = b.op('Reshape', [
        b.op('Transpose', [centred], { perm: [1, 0, 2, 3] }),
        b.weight('r', int64Tensor([2], [kn, -1])),
      ]);
      b.op('ReduceSum', [rows, b.weight('axis', int64Tensor([1], [1]))], { keepdims: 0 }, 'sum');
      b.op('Gemm', [rows, rows], { transB: 1 }, 'gram');
    } else {
      const cols = b.op('Reshape', [
        b.op('Transpose', [centred], { perm: [0, 2, 3, 1] }),
        b.weight('r', int64Tensor([2], [-1, kn])),
      ]);
      b.op('ReduceSum', [cols, b.weight('axis', int64Tensor([1], [0]))], { keepdims: 0 }, 'sum');
      b.op('Gemm', [cols, cols], { transA: 1 }, 'gram');
    }
    b.output('sum');
    b.output('gram');
  });
}

/** Post-ReLU-like activations (means comparable to stds, many exact zeros), K models. */
function reluBatch(random: Random, dims: readonly number[]): Tensor<'float32'>[] {
  return randomBatch(random, NUM_MODELS, dims, 1).map((a) => ({
    dtype: 'float32',
    dims: a.dims,
    data: a.data.map((v) => Math.max(v, 0)),
  }));
}

/**
 * Best time of each body over `rounds` round-robin rounds (after one warm-up each). Round-robin
 * so that load from other processes on this machine hits every variant alike.
 */
async function bestOfEach(
  rounds: number,
  bodies: Record<string, () => Promise<unknown>>,
): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (const [name, body] of Object.entries(bodies)) {
    await body();
    best[name] = Infinity;
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, body] of Object.entries(bodies)) {
      const start = performance.now();
      await body();
      best[name] = Math.min(best[name]!, performance.now() - start);
    }
  }
  return best;
}

/** Runs the whole benchmark once and returns its measurements. */
export async function benchStats(): Promise<object> {
  const loadBefore = loadavg()[0]!;
  const peakSession = await gemmSession(PEAK_SIZE);
  const kernel = createGramKernel({ threads: THREADS });
  const rowsKernel = createGramKernel({ threads: THREADS, layout: 'rows' });
  const perSampleKernel = createGramKernel({ threads: THREADS, layout: 'per-sample' });
  const random = new Random(1);
  let bestPeakMs = Infinity;
  const stages = [];
  for (const { width, side } of STAGES) {
    const dims = [BATCH, width, side, side];
    const kn = NUM_MODELS * width;
    const positions = BATCH * side * side;
    const countedFlops = 2 * kn * kn * positions;
    const executedFlops = ((NUM_MODELS * (NUM_MODELS + 1)) / 2) * 2 * width * width * positions;
    const batches = [reluBatch(random, dims), reluBatch(random, dims)];
    const means = channelMeans(batches[0]!);
    if (!means.ok) throw new Error(means.message);
    const shift = Float32Array.from(means.value);
    const withNan = batches[1]!.map((t) => ({ ...t, data: t.data.slice() }));
    withNan[0]!.data[7] = Number.NaN;
    const feeds: Record<string, Tensor<'float32'>> = { shift: float32Tensor([kn], shift) };
    batches[0]!.forEach((t, k) => (feeds[`x${k}`] = t));
    const rows = await alternative('concat-rows', dims);
    const columns = await alternative('concat-columns', dims);
    const acc = new CovarianceAccumulator(NUM_MODELS, width);

    const ms = await bestOfEach(ROUNDS, {
      peak: () => peakSession.session.run(peakSession.feeds),
      kernel: () => kernel.moments(batches[0]!, shift),
      rowsKernel: () => rowsKernel.moments(batches[0]!, shift),
      perSampleKernel: () => perSampleKernel.moments(batches[0]!, shift),
      accumulateBatch: () => accumulateBatch(kernel, acc, batches[0]!),
      nanSafe: () => kernel.moments(withNan, shift),
      firstBatchShift: async () => channelMeans(batches[0]!),
      concatRows: () => rows.run(feeds),
      concatColumns: () => columns.run(feeds),
    });
    await rows.release();
    await columns.release();
    bestPeakMs = Math.min(bestPeakMs, ms.peak!);
    const peakGflops = (2 * PEAK_SIZE ** 3) / ms.peak! / 1e6;

    // Precision of float32-in-batch, float64-across-batches against a float64 two-pass reference.
    const two = new CovarianceAccumulator(NUM_MODELS, width);
    for (const batch of batches) {
      const added = await accumulateBatch(kernel, two, batch);
      if (!added.ok) throw new Error(added.message);
    }
    const stats = two.finalize();
    if (!stats.ok) throw new Error(stats.message);
    const reference = referenceStatistics(batches);

    const gflops = countedFlops / ms.kernel! / 1e6;
    const layout = activationLayout(batches[0]!);
    if (typeof layout === 'string') throw new Error(layout);
    stages.push({
      dims,
      numModels: NUM_MODELS,
      stackedWidth: kn,
      positionsPerBatch: positions,
      kernelLayout: gramLayout(layout),
      kernelMs: round(ms.kernel!),
      countedGflops: round(gflops),
      peakGflopsMeasuredAlongside: round(peakGflops),
      fractionOfPeak: round(gflops / peakGflops),
      executedGflops: round(executedFlops / ms.kernel! / 1e6),
      accumulateBatchMs: round(ms.accumulateBatch!),
      nanSafeBatchMs: round(ms.nanSafe!),
      firstBatchShiftMs: round(ms.firstBatchShift!),
      alternatives: {
        blocksRows: {
          ms: round(ms.rowsKernel!),
          countedGflops: round(countedFlops / ms.rowsKernel! / 1e6),
        },
        blocksPerSample: {
          ms: round(ms.perSampleKernel!),
          countedGflops: round(countedFlops / ms.perSampleKernel! / 1e6),
        },
        concatRows: {
          ms: round(ms.concatRows!),
          countedGflops: round(countedFlops / ms.concatRows! / 1e6),
        },
        concatColumns: {
          ms: round(ms.concatColumns!),
          countedGflops: round(countedFlops / ms.concatColumns! / 1e6),
        },
      },
      precisionOverTwoBatches: {
        covarianceErrorInCorrelationUnits: covarianceError(
          stats.value.covariance,
          reference.covariance,
        ),
        correlationMaxAbsError: maxAbsDifference(stats.value.correlation, reference.correlation),
      },
    });
  }
  await kernel.release();
  await rowsKernel.release();
  await perSampleKernel.release();
  await peakSession.session.release();
  return {
    threads: THREADS,
    loadAverage1m: { before: round(loadBefore), after: round(loadavg()[0]!) },
    gemmPeak: {
      size: PEAK_SIZE,
      bestMs: round(bestPeakMs),
      gflops: round((2 * PEAK_SIZE ** 3) / bestPeakMs / 1e6),
    },
    flopsCounted:
      '2 * Kn^2 * P per batch (the full Gram); executedGflops counts the K(K+1)/2 blocks computed; fractionOfPeak is against the MatMul peak measured round-robin with the stage',
    stages,
  };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchStats(), null, 2));
}
