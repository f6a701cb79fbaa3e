/** @file Helpers for the exporter and robustness tests: torch-extra fixtures, merge data, exactness checks. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDataset, takeBalanced, type Dataset } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { readModelFile } from '../../src/onnx/files.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { createSession } from '../../src/runtime/session.js';
import { maxAbsDiff, TEST_DIR } from '../helpers.js';

/** The fixtures scripts/make-torch-fixtures.py writes. */
export const TORCH_EXTRA_DIR = join(TEST_DIR, 'fixtures', 'torch-extra');

/** One entry of torch-extra/manifest.json. */
export interface ExtraFixture {
  readonly name: string;
  readonly file: string;
  readonly input_shape: [number, number, number];
  readonly opset: number;
  readonly do_constant_folding: boolean;
  readonly note: string;
  /** PyTorch's logits on {@link probeFor}'s 2 inputs. */
  readonly logits: number[][];
}

/** The manifest's models. */
export function extraFixtures(): ExtraFixture[] {
  const text = readFileSync(join(TORCH_EXTRA_DIR, 'manifest.json'), 'utf8');
  return (JSON.parse(text) as { models: ExtraFixture[] }).models;
}

/** Reads a torch-extra model or throws. */
export function extraModel(file: string): Model {
  const model = readModelFile(join(TORCH_EXTRA_DIR, file));
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/** The manifest's probe: x[i] = sin(0.37 i) + 0.5 cos(0.011 i) over a flat [n, C, H, W]. */
export function probeFor(shape: readonly number[], n = 2): Float32Array {
  const size = n * shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = Math.sin(i * 0.37) + 0.5 * Math.cos(i * 0.011);
  return data;
}

/** Runs a model on `input` of shape [n, ...shape]; returns its first output. */
export async function runFirstOutput(
  model: Model,
  input: Float32Array,
  shape: readonly number[],
  n: number,
): Promise<Float32Array> {
  const session = await createSession(model, { threads: 1 });
  if (!session.ok) throw new Error(session.message);
  try {
    const name = session.value.inputNames[0]!;
    const outputs = await session.value.run({ [name]: float32Tensor([n, ...shape], input) });
    return outputs[session.value.outputNames[0]!]!.data;
  } finally {
    await session.value.release();
  }
}

let fashion: Dataset | undefined;

/** 200 balanced Fashion-MNIST training images (cached: the set loads once per process). */
export function fashionMergeData(seed = 3): Dataset {
  if (fashion === undefined) {
    const train = loadFashionMnist('train');
    if (!train.ok) throw new Error(train.message);
    fashion = train.value;
  }
  const data = takeBalanced(fashion, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 200, seed);
  if (!data.ok) throw new Error(data.message);
  return data.value;
}

/** Smooth seeded synthetic images (not noise, so conv features correlate): count x C x H x W. */
export function syntheticData(
  shape: readonly [number, number, number],
  count: number,
  seed = 1,
): Dataset {
  const [channels, height, width] = shape;
  const images = new Uint8Array(count * channels * height * width);
  let p = 0;
  for (let n = 0; n < count; n++) {
    const fx = 0.2 + ((n * 7 + seed) % 11) * 0.05;
    const fy = 0.15 + ((n * 5 + seed) % 13) * 0.04;
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
          images[p++] = Math.round(
            127.5 +
              127 * Math.sin(fx * x + fy * y * (c + 1) + n * 0.9 + c) * Math.cos(0.3 * n + y * 0.1),
          );
  }
  const dataset = createDataset(
    {
      images,
      labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
      count,
      channels,
      height,
      width,
      numClasses: 10,
    },
    'synthetic images',
  );
  if (!dataset.ok) throw new Error(dataset.message);
  return dataset.value;
}

/** Normalised copies of the first `n` images of a dataset (pixel / 255 - 0.5) / 0.25. */
export function imagesAsInput(data: Dataset, n: number, mean = 0.5, std = 0.25): Float32Array {
  const size = data.channels * data.height * data.width;
  const out = new Float32Array(n * size);
  for (let i = 0; i < out.length; i++) out[i] = (data.images[i]! / 255 - mean) / std;
  return out;
}

/**
 * The invariance test: permute every space of `model` (a function-preserving
 * reparametrisation), merge (model, permuted) with Permute and no correction, and check the
 * merged model computes `model`'s function on images from the merge data. Returns the
 * largest output difference.
 */
export async function mergesBackToItself(
  model: Model,
  data: Dataset,
  normalization: { mean: number; std: number },
  seed = 7,
): Promise<number> {
  const permuted = permuteChannels(model, seed);
  assert.ok(permuted.ok, permuted.ok ? '' : permuted.message);
  const shape = [data.channels, data.height, data.width];
  // A model exported with a fixed batch takes exactly that many images.
  const fixed = model.graph.inputs[0]?.shape?.[0];
  const probeCount = typeof fixed === 'number' ? fixed : 8;
  const input = imagesAsInput(data, probeCount, normalization.mean, normalization.std);
  const expected = await runFirstOutput(model, input, shape, probeCount);
  const permutedOut = await runFirstOutput(permuted.value.model, input, shape, probeCount);
  assert.ok(maxAbsDiff(expected, permutedOut) < 1e-4, 'the permuted model computes the same');
  const merged = await mergeModels([model, permuted.value.model], ['A', 'B'], data, normalization, {
    method: 'permute',
    match: { alpha: 0.3, beta: 0 },
    repair: false,
    batchSize: 100,
    threads: 1,
  });
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  return maxAbsDiff(expected, await runFirstOutput(merged.value.model, input, shape, probeCount));
}
