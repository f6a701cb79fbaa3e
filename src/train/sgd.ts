/** @file The step graph's optimizer: SGD with momentum and per-parameter L2 weight decay. */
import { fail, ok, type Result } from '../errors.js';
import type { Emitter } from './emitter.js';
import type { TrainingPlan } from './plan.js';

/** The optimizer's hyper-parameters baked into the step graph; the learning rate is fed per step. */
export interface SgdOptions {
  /** SGD momentum (PyTorch convention: v = mu * v + g; w -= lr * v). */
  readonly momentum: number;
  /** L2 weight decay, on the parameters `decay` names. */
  readonly weightDecay: number;
  /**
   * Default 'all': every trainable parameter (BN affine parameters and biases too), as
   * PyTorch's SGD does with `weight_decay` and as the reference's models were trained;
   * 'weights': Conv, Gemm and MatMul weights only.
   */
  readonly decay?: 'all' | 'weights';
}

/** One piece of state carried between steps: the input and the output holding its next value. */
export interface StateEntry {
  readonly input: string;
  readonly output: string;
}

/** Graph input holding the momentum buffer of weight `name`. */
export function momentumName(name: string): string {
  return `momentum:${name}`;
}

/** Graph output holding the next value of state input `name`. */
export function nextName(name: string): string {
  return `next:${name}`;
}

/**
 * Emits one SGD step for every parameter in `trainable`, in the plan's initializer order:
 * a momentum buffer input per parameter, and outputs with the next parameter and buffer.
 * `gradientOf` gives a parameter's gradient; a parameter without one fails.
 */
export function emitSgd(
  e: Emitter,
  plan: TrainingPlan,
  trainable: ReadonlySet<string>,
  gradientOf: (name: string) => string | undefined,
  learningRate: string,
  options: SgdOptions,
): Result<StateEntry[]> {
  const b = e.b;
  const state: StateEntry[] = [];
  // A MatMul's weight may be either operand; activations are not initializers, so they drop out.
  const weights = new Set(
    plan.nodes.flatMap((p) =>
      p.op === 'MatMul'
        ? p.node.inputs.filter((name) => plan.initializers.has(name))
        : p.op === 'Conv' || p.op === 'Gemm'
          ? [p.node.inputs[1]!]
          : [],
    ),
  );
  const decayed = (name: string): boolean =>
    (options.decay ?? 'all') === 'all' || weights.has(name);
  for (const name of plan.initializers.keys()) {
    if (!trainable.has(name)) continue;
    const grad = gradientOf(name);
    if (grad === undefined)
      return fail('unsupported-model', `Weight '${name}' does not affect the loss.`);
    const velocity = b.input(momentumName(name), plan.initializers.get(name)!.dims);
    const g =
      decayed(name) && options.weightDecay !== 0
        ? b.op('Add', [grad, b.op('Mul', [name, e.scalar(options.weightDecay)])])
        : grad;
    const [nextVelocity] = b.node(
      'Add',
      [b.op('Mul', [velocity, e.scalar(options.momentum)]), g],
      {},
      { outputs: [nextName(velocity)] },
    );
    b.node(
      'Sub',
      [name, b.op('Mul', [nextVelocity!, learningRate])],
      {},
      { outputs: [nextName(name)] },
    );
    state.push(
      { input: name, output: nextName(name) },
      { input: velocity, output: nextName(velocity) },
    );
  }
  return ok(state);
}
