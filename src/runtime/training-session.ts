/** @file A stateful onnxruntime session for training steps: state tensors (weights, momenta,
 * running statistics) stay as onnxruntime tensors and each step's outputs are fed straight
 * back as the next step's inputs, so the loop copies nothing in JavaScript.
 */
import * as ort from 'onnxruntime-node';
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import type { Tensor } from '../onnx/tensor.js';

/** How to create a {@link StatefulSession}. */
export interface StatefulSessionOptions {
  /** onnxruntime intra-op threads (default 2). */
  readonly threads?: number;
  /** Initial value of every state input. */
  readonly initialState: ReadonlyMap<string, Tensor<'float32'>>;
  /** Each state input and the output that holds its next value. */
  readonly state: readonly { readonly input: string; readonly output: string }[];
  /** Non-state outputs each step returns (e.g. the loss and the logits). */
  readonly fetch: readonly string[];
  /** Write an onnxruntime profile (JSON) with this file prefix; for throughput work only. */
  readonly profilePrefix?: string;
}

/** A session whose state advances by one step per {@link StatefulSession.step}. */
export interface StatefulSession {
  /** Runs one step on `feeds` (the non-state inputs); returns the fetched outputs. */
  step(
    feeds: Readonly<Record<string, Tensor<'float32'>>>,
  ): Promise<Record<string, Tensor<'float32'>>>;
  /** The current value of every state input (views of the live tensors; copy to keep). */
  state(): Map<string, Float32Array>;
  /** Replaces the value of the named state inputs (copied). */
  setState(values: ReadonlyMap<string, Tensor<'float32'>>): void;
  /** Stops profiling and writes the profile file (when profiling). */
  endProfiling(): void;
  release(): Promise<void>;
}

/** Creates a stateful session from ONNX bytes. */
export async function createStatefulSession(
  bytes: Uint8Array,
  options: StatefulSessionOptions,
): Promise<Result<StatefulSession>> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.threads ?? 2,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      ...(options.profilePrefix !== undefined
        ? { enableProfiling: true, profileFilePrefix: options.profilePrefix }
        : {}),
    });
  } catch (error: unknown) {
    return runtimeFailure('onnxruntime could not load the training graph', error);
  }
  const current = new Map<string, ort.Tensor>();
  for (const { input } of options.state) {
    const value = options.initialState.get(input);
    if (value === undefined)
      return fail('bad-argument', `No initial value for state input '${input}'.`);
    current.set(input, new ort.Tensor('float32', Float32Array.from(value.data), [...value.dims]));
  }
  const outputNames = [...options.fetch, ...options.state.map((s) => s.output)];
  return ok({
    async step(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = Object.fromEntries(current);
      for (const [name, t] of Object.entries(feeds))
        ortFeeds[name] = new ort.Tensor('float32', t.data, [...t.dims]);
      const result = await session.run(ortFeeds, outputNames);
      for (const { input, output } of options.state)
        current.set(input, result[output] as ort.Tensor);
      const fetched: Record<string, Tensor<'float32'>> = {};
      for (const name of options.fetch) {
        const value = result[name]!;
        fetched[name] = {
          dtype: 'float32',
          dims: [...value.dims],
          data: value.data as Float32Array,
        };
      }
      return fetched;
    },
    state() {
      return new Map([...current].map(([name, t]) => [name, t.data as Float32Array]));
    },
    setState(values) {
      for (const [name, value] of values) {
        if (!current.has(name)) throw new Error(`'${name}' is not a state input`);
        current.set(
          name,
          new ort.Tensor('float32', Float32Array.from(value.data), [...value.dims]),
        );
      }
    },
    endProfiling() {
      if (options.profilePrefix !== undefined) session.endProfiling();
    },
    async release() {
      await session.release();
    },
  });
}
