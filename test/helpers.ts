/** @file Shared test helpers: fixture paths, zoo models, running a model on a batch. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeGraph } from '../src/graph/analyze.js';
import { analyzeSpaces, type SpaceAnalysis } from '../src/graph/spaces.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { readModelFile } from '../src/onnx/files.js';
import type { Model } from '../src/onnx/model.js';
import { float32Tensor } from '../src/onnx/tensor.js';
import { createSession } from '../src/runtime/session.js';
import { buildZooModel, type Architecture } from '../src/zoo/architectures.js';

/** The repository's test folder. */
export const TEST_DIR = dirname(fileURLToPath(import.meta.url));
/** The PyTorch fixtures copied from shared/fixtures. */
export const TORCH_DIR = join(TEST_DIR, 'fixtures', 'torch-fmnist');

/** One pair of the PyTorch fixtures' manifest. */
export interface FixturePair {
  name: string;
  dir: string;
  classes_a: number[];
  classes_b: number[];
  model_a: { joint: number; task0: number; task1: number };
  model_b: { joint: number; task0: number; task1: number };
  ensemble: { joint: number; task0: number; task1: number };
  first8_test_labels: number[];
  first8_logits_a: number[][];
  first8_logits_b: number[][];
}

/** The manifest's pairs. */
export function fixturePairs(): FixturePair[] {
  return (
    JSON.parse(readFileSync(join(TORCH_DIR, 'manifest.json'), 'utf8')) as { pairs: FixturePair[] }
  ).pairs;
}

/** Reads a fixture model or throws. */
export function fixtureModel(dir: string, which: 'a' | 'b'): Model {
  const model = readModelFile(join(TORCH_DIR, dir, `${which}.onnx`));
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/** A freshly initialised zoo model on 1x28x28 inputs with a head over `classLabels`. */
export function zooModel(
  arch: Architecture,
  seed = 1,
  width = 1,
  classLabels: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
): Model {
  const model = buildZooModel({
    arch,
    width,
    seed,
    inputShape: [1, 28, 28],
    classLabels: [...classLabels],
    preprocessing: { mean: [0.286], std: [0.353] },
  });
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

/** A deterministic input batch [n, 1, 28, 28]. */
export function probeInput(n = 8): Float32Array {
  const data = new Float32Array(n * 28 * 28);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) + 0.5 * Math.cos(i * 0.011);
  return data;
}

/** Runs a model on `input` and returns its outputs by name. */
export async function runModel(
  model: Model,
  input: Float32Array,
  n = 8,
): Promise<Record<string, Float32Array>> {
  const session = await createSession(model);
  if (!session.ok) throw new Error(session.message);
  const name = session.value.inputNames[0]!;
  const outputs = await session.value.run({ [name]: float32Tensor([n, 1, 28, 28], input) });
  await session.value.release();
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.data]));
}

/** Largest absolute difference of two arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** What a run of the real CLI printed and how it exited. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real CLI (`src/cli/main.ts` through tsx) from the repository root. */
export function runZipit(args: readonly string[]): Promise<CliRun> {
  const root = join(TEST_DIR, '..');
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A fresh directory under the system's temporary directory, removed when the test process
 * exits (node --test runs each file in its own process), so that test runs leave nothing behind.
 */
export function temporaryDirectory(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The merge spaces of `model`; fails the test if the graph or its spaces cannot be analysed. */
export function spacesOf(model: Model): SpaceAnalysis {
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok, spaces.ok ? '' : spaces.message);
  return spaces.value;
}

/** Deterministic weights in [-0.5, 0.5]. */
export function sineValues(count: number, seed: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => 0.5 * Math.sin(i * 1.7 + seed * 3.1));
}

/** A weight initializer of `dims` filled with {@link sineValues}; returns its name. */
export function sineWeight(b: GraphBuilder, name: string, dims: number[], seed: number): string {
  return b.weight(
    name,
    float32Tensor(
      dims,
      sineValues(
        dims.reduce((x, y) => x * y, 1),
        seed,
      ),
    ),
  );
}
