/** @file Training throughput: images/s of one ONNX training step (forward, backward, SGD) for
 * ResNet-20 x1 and x4 and the zoo ViT x1 at batch 128 on 2 threads, beside PyTorch's for the
 * same model and batch (scripts/torch-train-bench.py, run with /usr/bin/python3 when it has torch).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeModel } from '../src/onnx/model.js';
import { float32Tensor, type Tensor } from '../src/onnx/tensor.js';
import { nchwcBlockSize } from '../src/runtime/nchwc.js';
import { createStatefulSession } from '../src/runtime/training-session.js';
import { Random } from '../src/tensor/random.js';
import { planTraining } from '../src/train/plan.js';
import { buildStepGraph, momentumName } from '../src/train/step-graph.js';
import { buildZooModel } from '../src/zoo/architectures.js';

const BATCH = 128;
const THREADS = 2;
const MODELS = [
  { arch: 'resnet20', width: 1 },
  { arch: 'resnet20', width: 4 },
  { arch: 'vit', width: 1 },
] as const;
type BenchModel = (typeof MODELS)[number];
const keyOf = (m: BenchModel): string => `${m.arch}x${m.width}`;

/** Steps after warm-up: enough for a stable mean at x1, few at x4 where one step takes seconds. */
function stepsFor(width: number): number {
  return width <= 1 ? 20 : 3;
}

async function onnxImagesPerSecond(
  { arch, width }: BenchModel,
  block: number | undefined,
): Promise<{ imagesPerSecond: number; msPerStep: number }> {
  const zoo = buildZooModel({
    arch,
    width,
    seed: 0,
    inputShape: [1, 28, 28],
    classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    preprocessing: { mean: [0.286], std: [0.353] },
  });
  if (!zoo.ok) throw new Error(zoo.message);
  const plan = planTraining(zoo.value, BATCH);
  if (!plan.ok) throw new Error(plan.message);
  const step = buildStepGraph(plan.value, {
    momentum: 0.9,
    weightDecay: 5e-4,
    ...(block !== undefined ? { nchwcBlock: block } : {}),
  });
  if (!step.ok) throw new Error(step.message);
  const initialState = new Map<string, Tensor<'float32'>>();
  for (const [name, tensor] of plan.value.initializers) {
    initialState.set(name, tensor as Tensor<'float32'>);
    initialState.set(momentumName(name), float32Tensor(tensor.dims));
  }
  const session = await createStatefulSession(encodeModel(step.value.model), {
    threads: THREADS,
    initialState,
    state: step.value.names.state,
    fetch: ['loss'],
  });
  if (!session.ok) throw new Error(session.message);
  const random = new Random(0);
  const feeds = {
    input: float32Tensor(
      plan.value.inputShape,
      Float32Array.from({ length: BATCH * 784 }, () => random.normal()),
    ),
    targets: float32Tensor(
      [BATCH, 10],
      Float32Array.from({ length: BATCH * 10 }, (_, i) => (i % 10 === random.int(10) ? 1 : 0)),
    ),
    learning_rate: float32Tensor([], Float32Array.of(0.05)),
  };
  await session.value.step(feeds); // warm-up: onnxruntime allocates its arenas on the first run
  const steps = stepsFor(width);
  const started = performance.now();
  for (let i = 0; i < steps; i++) await session.value.step(feeds);
  const seconds = (performance.now() - started) / 1000;
  await session.value.release();
  return { imagesPerSecond: (steps * BATCH) / seconds, msPerStep: (1000 * seconds) / steps };
}

function torchImagesPerSecond(): Record<string, number> | { skipped: string } {
  const script = join(import.meta.dirname, '..', 'scripts', 'torch-train-bench.py');
  const result = spawnSync(
    '/usr/bin/python3',
    [
      script,
      '--models',
      MODELS.map(keyOf).join(','),
      '--batch',
      String(BATCH),
      '--threads',
      String(THREADS),
    ],
    { encoding: 'utf8' },
  );
  if (result.error || result.status !== 0)
    return {
      skipped: `python3 with torch unavailable (${result.error?.message ?? result.stderr.trim().split('\n').pop()})`,
    };
  return (JSON.parse(result.stdout) as { imagesPerSecond: Record<string, number> }).imagesPerSecond;
}

/**
 * Rounds of zipit then PyTorch, alternated: this machine's speed drifts by 10-20% over a few
 * minutes (measured: the same session's x1 steps went 262 -> 232 images/s between rounds), so
 * each side's mean over the rounds sees the same drift and their ratio is fair.
 */
const ROUNDS = 4;

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Measures ONNX training throughput and PyTorch's in the same run; ratios > 1 mean faster than PyTorch. */
export async function benchTrain(): Promise<object> {
  const block = await nchwcBlockSize();
  const rounds: Record<string, number>[] = [];
  const torchRounds: Record<string, number>[] = [];
  let torchSkipped: string | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    const measured: Record<string, number> = {};
    for (const model of MODELS) {
      measured[keyOf(model)] = (await onnxImagesPerSecond(model, block)).imagesPerSecond;
    }
    rounds.push(measured);
    if (torchSkipped !== undefined) continue;
    const torch = torchImagesPerSecond();
    if ('skipped' in torch) torchSkipped = String(torch.skipped);
    else torchRounds.push(torch);
  }
  const onnx: Record<string, { imagesPerSecond: number; msPerStep: number; rounds: number[] }> = {};
  for (const model of Object.keys(rounds[0]!)) {
    const values = rounds.map((r) => r[model]!);
    onnx[model] = {
      imagesPerSecond: Number(mean(values).toFixed(1)),
      msPerStep: Number(((1000 * BATCH) / mean(values)).toFixed(0)),
      rounds: values.map((v) => Number(v.toFixed(1))),
    };
  }
  // The plain NCHW graph beside the blocked one shows what the NCHWc layout buys (one round).
  const onnxPlain: Record<string, { imagesPerSecond: number; msPerStep: number }> = {};
  for (const model of MODELS) {
    const measured = await onnxImagesPerSecond(model, undefined);
    onnxPlain[keyOf(model)] = {
      imagesPerSecond: Number(measured.imagesPerSecond.toFixed(1)),
      msPerStep: Number(measured.msPerStep.toFixed(0)),
    };
  }
  const torch: Record<string, number> | { skipped: string } =
    torchSkipped !== undefined
      ? { skipped: torchSkipped }
      : Object.fromEntries(
          Object.keys(torchRounds[0]!).map((model) => [
            model,
            Number(mean(torchRounds.map((r) => r[model]!)).toFixed(1)),
          ]),
        );
  const ratio: Record<string, number> = {};
  // Each round's ratio pairs two measurements taken a minute apart; their spread says how far
  // the machine's drift, not the code, moves the mean ratio.
  const roundRatios: Record<string, number[]> = {};
  if (!('skipped' in torch)) {
    for (const [model, value] of Object.entries(onnx)) {
      const reference = torch[model];
      if (reference === undefined) continue;
      ratio[model] = Number((value.imagesPerSecond / reference).toFixed(2));
      roundRatios[model] = rounds.map((r, i) =>
        Number((r[model]! / torchRounds[i]![model]!).toFixed(2)),
      );
    }
  }
  return {
    name: 'train',
    batch: BATCH,
    threads: THREADS,
    input: '1x28x28',
    rounds: ROUNDS,
    nchwcBlock: block ?? null,
    onnx,
    onnxPlainLayout: onnxPlain,
    torch,
    ...(torchRounds.length > 0 ? { torchRounds } : {}),
    onnxOverTorch: ratio,
    onnxOverTorchPerRound: roundRatios,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchTrain(), null, 2));
}
