/** @file Inference throughput of ResNet-20 x1/x4 and the cost of capturing every space's activations. */
import { pathToFileURL } from 'node:url';
import { analyzeGraph } from '../src/graph/analyze.js';
import { analyzeSpaces } from '../src/graph/spaces.js';
import { float32Tensor } from '../src/onnx/tensor.js';
import { createSession, withCapturedOutputs } from '../src/runtime/session.js';
import { buildZooModel } from '../src/zoo/architectures.js';

const BATCH = 128;
const THREADS = 2;
const REPEATS = 8;

/** Images/s of a plain forward pass and of one that also returns every space's site tensor, side by side. */
export async function benchInference(): Promise<object> {
  const results: Record<string, object> = {};
  for (const width of [1, 4]) {
    const model = buildZooModel({
      arch: 'resnet20',
      width,
      seed: 1,
      inputShape: [1, 28, 28],
      classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      preprocessing: { mean: [0.286], std: [0.353] },
    });
    if (!model.ok) throw new Error(model.message);
    const graph = analyzeGraph(model.value);
    if (!graph.ok) throw new Error(graph.message);
    const spaces = analyzeSpaces(graph.value);
    if (!spaces.ok) throw new Error(spaces.message);
    const sites = [
      ...new Set(spaces.value.spaces.filter((s) => s.kind !== 'fixed').map((s) => s.site!.value)),
    ];
    const plain = await createSession(model.value, { threads: THREADS });
    const capture = await createSession(withCapturedOutputs(model.value, sites), {
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
    results[`resnet20x${width}`] = {
      imagesPerSecond: Math.round(BATCH / plainSeconds),
      withCaptureImagesPerSecond: Math.round(BATCH / captureSeconds),
      capturedTensors: sites.length,
      captureOverPlain: Number((captureSeconds / plainSeconds).toFixed(2)),
    };
    await plain.value.release();
    await capture.value.release();
  }
  return { name: 'inference', batch: BATCH, threads: THREADS, input: '1x28x28', results };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchInference(), null, 2));
}
