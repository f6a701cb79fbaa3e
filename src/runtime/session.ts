/** @file The only importer of onnxruntime-node: sessions, batched runs and activation capture. */
import * as ort from 'onnxruntime-node';
import { ok, runtimeFailure, type Result } from '../errors.js';
import { encodeModel, type Model, type ValueInfo } from '../onnx/model.js';
import type { Tensor } from '../onnx/tensor.js';

/** How to run: onnxruntime's intra-op threads (default 2: this project's machines have 2 cores). */
export interface RunOptions {
  readonly threads?: number;
}

/** An onnxruntime session over a model, with its input and output names. */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs one batch; returns the requested outputs (all by default) as float32 tensors. */
  run(
    feeds: Readonly<Record<string, Tensor<'float32'>>>,
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor<'float32'>>>;
  release(): Promise<void>;
}

/** Creates a session from an in-memory model (encoded once here). */
export async function createSession(
  model: Model,
  options: RunOptions = {},
): Promise<Result<Session>> {
  return createSessionFromBytes(encodeModel(model), options);
}

/** Creates a session from ONNX bytes. */
export async function createSessionFromBytes(
  bytes: Uint8Array,
  options: RunOptions = {},
): Promise<Result<Session>> {
  const threads = options.threads ?? 2;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Warnings (e.g. unused initializers of correction variants) are not the user's business.
      logSeverityLevel: 3,
    });
  } catch (error: unknown) {
    return runtimeFailure('onnxruntime could not load the model', error);
  }
  return ok({
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputs) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) {
        ortFeeds[name] = new ort.Tensor('float32', t.data, [...t.dims]);
      }
      const result = outputs
        ? await session.run(ortFeeds, [...outputs])
        : await session.run(ortFeeds);
      const converted: Record<string, Tensor<'float32'>> = {};
      for (const [name, value] of Object.entries(result)) {
        if (value.type !== 'float32') {
          throw new Error(`output ${name} is ${value.type}; zipit reads float32 outputs only`);
        }
        converted[name] = {
          dtype: 'float32',
          dims: [...value.dims],
          data: value.data as Float32Array,
        };
      }
      return converted;
    },
    async release() {
      await session.release();
    },
  });
}

/**
 * The model with extra graph outputs for `names`, so one run returns those intermediate
 * tensors too. Outputs it already has are not duplicated; results do not change because
 * onnxruntime computes the same nodes (it only keeps the extra tensors alive).
 */
export function withCapturedOutputs(model: Model, names: readonly string[]): Model {
  const existing = new Set(model.graph.outputs.map((o) => o.name));
  const extra: ValueInfo[] = names
    .filter((n) => !existing.has(n))
    .map((name) => ({ name, elemType: 1 }));
  return { ...model, graph: { ...model.graph, outputs: [...model.graph.outputs, ...extra] } };
}
