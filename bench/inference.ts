/** @file Inference throughput of ResNet-20 x1/x4, the cost of capturing every space's
 * activations, and the cost of the statistics pass (what capture is for) fused or not.
 */
import { pathToFileURL } from 'node:url';
import { batches, takeBalanced } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { analyzeGraph } from '../src/graph/analyze.js';
import { analyzeSpaces } from '../src/graph/spaces.js';
import { collectStatistics } from '../src/merge/collect.js';
import { analyzeModels } from '../src/merge/pipeline.js';
import { checkSameStructure } from '../src/merge/structure.js';
import type { Model } from '../src/onnx/model.js';
import { float32Tensor } from '../src/onnx/tensor.js';
import { createSession, withCapturedOutputs } from '../src/runtime/session.js';
import { buildZooModel } from '../src/zoo/architectures.js';

const BATCH = 128;
const THREADS = 2;
const REPEATS = 8;
/** Batches of the statistics pass: the first sets the shifts (captured), the rest are timed. */
const STAT_BATCHES = 6;

function resnet20(width: number, seed: number): Model {
  const model = buildZooModel({
    arch: 'resnet20',
    width,
    seed,
    inputShape: [1, 28, 28],
    classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    preprocessing: { mean: [0.286], std: [0.353] },
  });
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/**
 * Seconds per batch of the statistics pass over two models (every space's stacked sums and
 * Gram), after the first batch: `fused` runs both models and the moments in one session,
 * otherwise each batch's activations are captured and fed to the Gram session.
 */
async function statisticsSecondsPerBatch(
  models: readonly Model[],
  fused: boolean,
): Promise<number> {
  const labels = models.map((_, k) => `m${k}`);
  const graphs = analyzeModels(models, labels);
  if (!graphs.ok) throw new Error(graphs.message);
  const maps = checkSameStructure(graphs.value, labels);
  if (!maps.ok) throw new Error(maps.message);
  const spaces = analyzeSpaces(graphs.value[0]!);
  if (!spaces.ok) throw new Error(spaces.message);
  const sites = spaces.value.spaces.filter((s) => s.kind !== 'fixed' && s.site !== undefined);
  const test = loadFashionMnist('test');
  if (!test.ok) throw new Error(test.message);
  const data = takeBalanced(test.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], BATCH * STAT_BATCHES, 1);
  if (!data.ok) throw new Error(data.message);
  const pass = batches(data.value, {
    batchSize: BATCH,
    normalization: { mean: 0.286, std: 0.353 },
  });
  if (!pass.ok) throw new Error(pass.message);
  const times: number[] = [];
  const collected = await collectStatistics(
    graphs.value,
    maps.value.values,
    sites,
    pass.value,
    [1, 28, 28],
    { threads: THREADS, fused, onProgress: () => times.push(performance.now()) },
  );
  if (!collected.ok) throw new Error(collected.message);
  // Best of the batch intervals after the first batch (which also builds the sessions).
  let best = Infinity;
  for (let i = 1; i < times.length; i++) best = Math.min(best, times[i]! - times[i - 1]!);
  return best / 1000;
}

/** Images/s of a plain forward pass and of one that also returns every space's site tensor, side by side. */
export async function benchInference(): Promise<object> {
  const results: Record<string, object> = {};
  for (const width of [1, 4]) {
    const model = resnet20(width, 1);
    const graph = analyzeGraph(model);
    if (!graph.ok) throw new Error(graph.message);
    const spaces = analyzeSpaces(graph.value);
    if (!spaces.ok) throw new Error(spaces.message);
    const sites = [
      ...new Set(spaces.value.spaces.filter((s) => s.kind !== 'fixed').map((s) => s.site!.value)),
    ];
    const plain = await createSession(model, { threads: THREADS });
    const capture = await createSession(withCapturedOutputs(model, sites), {
      threads: THREADS,
    });
    if (!plain.ok || !capture.ok) throw new Error('session');
    const input = float32Tensor([BATCH, 1, 28, 28]);
    for (let i = 0; i < input.data.length; i++) input.data[i] = Math.sin(i * 0.01);
    // Alternate the two measurements so that machine load hits both alike; best of each.
    const once = async (session: typeof plain.value): Promise<number> => {
      const start = performance.now();
      await session.run({ input });
      return (performance.now() - start) / 1000;
    };
    await once(plain.value);
    await once(capture.value);
    let plainSeconds = Infinity;
    let captureSeconds = Infinity;
    for (let i = 0; i < REPEATS; i++) {
      plainSeconds = Math.min(plainSeconds, await once(plain.value));
      captureSeconds = Math.min(captureSeconds, await once(capture.value));
    }
    await plain.value.release();
    await capture.value.release();
    const pair = [model, resnet20(width, 2)];
    const fusedSeconds = await statisticsSecondsPerBatch(pair, true);
    const capturedSeconds = await statisticsSecondsPerBatch(pair, false);
    results[`resnet20x${width}`] = {
      imagesPerSecond: Math.round(BATCH / plainSeconds),
      withCaptureImagesPerSecond: Math.round(BATCH / captureSeconds),
      capturedTensors: sites.length,
      captureOverPlain: Number((captureSeconds / plainSeconds).toFixed(2)),
      // The statistics pass of a pair against the two plain forward passes it needs at least.
      statisticsPass: {
        models: 2,
        fusedMsPerBatch: Math.round(fusedSeconds * 1000),
        capturedMsPerBatch: Math.round(capturedSeconds * 1000),
        fusedOverPlain: Number((fusedSeconds / (2 * plainSeconds)).toFixed(2)),
        capturedOverPlain: Number((capturedSeconds / (2 * plainSeconds)).toFixed(2)),
      },
    };
  }
  return { name: 'inference', batch: BATCH, threads: THREADS, input: '1x28x28', results };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchInference(), null, 2));
}
