/** @file Assembles the training-step graph: forward, cross-entropy, backward, SGD update. */
import { ok, type Result } from '../errors.js';
import type { Model } from '../onnx/model.js';
import { emitBackward } from './backward/index.js';
import type { ConvWeightGrad } from './backward/types.js';
import { Emitter, StepBuilder } from './emitter.js';
import { emitForward } from './forward.js';
import type { TrainingPlan } from './plan.js';
import { emitSgd, nextName, type SgdOptions, type StateEntry } from './sgd.js';

export type { ConvWeightGrad } from './backward/types.js';
export { momentumName, nextName } from './sgd.js';

/** Hyper-parameters baked into the step graph; the learning rate is fed per step. */
export interface StepGraphOptions extends SgdOptions {
  /** Default 'im2col'; see {@link ConvWeightGrad}. */
  readonly convWeightGrad?: ConvWeightGrad;
  /**
   * onnxruntime's NCHWc channel block on this machine (`nchwcBlockSize()` in runtime/). When
   * set, every Conv whose channels are multiples of it runs forward, input gradient and (when
   * the batch is a multiple too) weight gradient as com.microsoft.nchwc ops, with the filters
   * reordered in the graph each step. onnxruntime only blocks convolutions with constant
   * filters itself, so a training graph would otherwise get the slower plain NCHW kernels.
   * Pass exactly the probed value: the graph's filter orders assume onnxruntime's block, and
   * any other value gives wrong gradients, not an error.
   */
  readonly nchwcBlock?: number;
}

/** Names of the step graph's inputs and outputs, so the loop can feed and collect them. */
export interface StepGraphNames {
  /** `[N, C, H, W]` normalised images. */
  readonly input: string;
  /** `[N, classes]` one-hot targets (float, so soft targets would work too). */
  readonly targets: string;
  /** `[]` learning rate of this step. */
  readonly learningRate: string;
  /** `[]` mean cross-entropy of the batch. */
  readonly loss: string;
  /** `[N, classes]` logits of the batch (before the update). */
  readonly logits: string;
  /** State carried between steps: each input name and the output holding its next value. */
  readonly state: readonly StateEntry[];
}

/** The step graph and its interface. */
export interface StepGraph {
  readonly model: Model;
  readonly names: StepGraphNames;
}

/**
 * Emits the step graph: one session run is one training step, the backward pass and the
 * update written as ordinary ONNX ops that an inference session runs. Fails for an
 * initializer the trainer does not know or a weight the loss does not reach.
 */
export function buildStepGraph(plan: TrainingPlan, options: StepGraphOptions): Result<StepGraph> {
  const b = new StepBuilder('training-step');
  const e = new Emitter(b);
  const n = plan.batchSize;
  const input = b.input(plan.input, plan.inputShape);
  const targets = b.input('targets', [n, plan.numClasses]);
  const learningRate = b.input('learning_rate', []);

  // Every parameter and running statistic becomes a fed input: they change each step.
  // Constants (shapes, indices, frozen scalars, folded shape arithmetic) stay weights.
  const runningStats = new Set<string>();
  for (const p of plan.nodes) {
    if (p.op === 'BatchNormalization') runningStats.add(p.node.inputs[3]!).add(p.node.inputs[4]!);
  }
  const trainable = new Set<string>();
  for (const [name, tensor] of plan.initializers) {
    if (!runningStats.has(name)) trainable.add(name);
    b.input(name, tensor.dims);
  }
  // Only those the planned nodes read: the folded shape arithmetic's own inputs are not.
  const read = new Set(plan.nodes.flatMap((p) => p.node.inputs));
  for (const [name, tensor] of plan.constants) if (read.has(name)) b.weight(name, tensor);

  const block = options.nchwcBlock;
  const { saved, layerNorms, nextStats } = emitForward(e, plan, block);

  /* ---------- loss: mean softmax cross-entropy ---------- */
  const logits = plan.output;
  const logProbs = b.op('LogSoftmax', [logits], { axis: 1 });
  const picked = b.op('ReduceSum', [b.op('Mul', [targets, logProbs]), e.ints([0, 1])], {
    keepdims: 0,
  });
  b.node('Mul', [picked, e.scalar(-1 / n)], {}, { outputs: ['loss'] });
  // d loss / d logits = (softmax - targets) / N
  const dLogits = b.op('Mul', [b.op('Sub', [b.op('Exp', [logProbs]), targets]), e.scalar(1 / n)]);

  const gradients = emitBackward(e, plan, {
    input,
    logits,
    dLogits,
    saved,
    layerNorms,
    convWeightGrad: options.convWeightGrad ?? 'im2col',
    block,
  });
  const updated = emitSgd(
    e,
    plan,
    trainable,
    (name) => gradients.sumOf(name),
    learningRate,
    options,
  );
  if (!updated.ok) return updated;
  const state = [...updated.value];
  for (const [name, next] of nextStats) {
    b.node('Identity', [next], {}, { outputs: [nextName(name)] });
    state.push({ input: name, output: nextName(name) });
  }

  b.output('loss', []);
  b.output(logits, [n, plan.numClasses]);
  for (const s of state)
    b.output(s.output, plan.initializers.get(s.input.replace(/^momentum:/, ''))!.dims);
  return ok({
    model: b.build(),
    names: { input, targets, learningRate, loss: 'loss', logits, state },
  });
}
