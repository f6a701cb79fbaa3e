/** @file Shared setup of the step-graph tests: a stateful session starting from a plan's weights. */
import assert from 'node:assert/strict';
import { encodeModel } from '../../src/onnx/model.js';
import { float32Tensor, type Tensor } from '../../src/onnx/tensor.js';
import { createStatefulSession } from '../../src/runtime/training-session.js';
import type { TrainingPlan } from '../../src/train/plan.js';
import { momentumName, type StepGraph } from '../../src/train/step-graph.js';

/**
 * A one-thread stateful session of `step`, its state starting at the plan's weights (and running
 * statistics) with zero momenta; also returns that initial state.
 */
export async function openStepSession(plan: TrainingPlan, step: StepGraph) {
  const stateInputs = new Set(step.names.state.map((s) => s.input));
  const initial = new Map<string, Tensor<'float32'>>();
  for (const [name, tensor] of plan.initializers) {
    initial.set(name, tensor as Tensor<'float32'>);
    if (stateInputs.has(momentumName(name)))
      initial.set(momentumName(name), float32Tensor(tensor.dims));
  }
  const session = await createStatefulSession(encodeModel(step.model), {
    threads: 1,
    initialState: initial,
    state: step.names.state,
    fetch: ['loss'],
  });
  assert.ok(session.ok);
  return { session: session.value, initial };
}
