/** @file Weight decay reaches the parameters it should ('all' vs 'weights'), and the linear schedule's shape. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { Random } from '../../src/tensor/random.js';
import { planTraining } from '../../src/train/plan.js';
import { learningRateAt, warmupStepsOf } from '../../src/train/schedule.js';
import { buildStepGraph } from '../../src/train/step-graph.js';
import { batchNorm, conv, linear, relu } from '../../src/zoo/layers.js';
import { openStepSession } from './helpers.js';

const N = 4;

/** conv -> BN -> ReLU -> flatten -> linear: a conv weight, BN affine parameters and a bias. */
function tiny() {
  const builder = new GraphBuilder('tiny');
  const ctx = { builder, random: new Random(7) };
  const x = builder.input('input', ['N', 1, 4, 4]);
  const h = relu(ctx, batchNorm(ctx, 'bn', conv(ctx, 'conv', x, 1, 2), 2));
  const flat = builder.op('Flatten', [h], { axis: 1 });
  builder.node('Identity', [linear(ctx, 'fc', flat, 32, 3)], {}, { outputs: ['logits'] });
  builder.output('logits', ['N', 3]);
  return builder.build();
}

/** Every parameter after one SGD step (momentum 0, learning rate 1, decay 0.1 on `decay`). */
async function oneStep(decay: 'all' | 'weights'): Promise<Map<string, Float32Array>> {
  const plan = planTraining(tiny(), N);
  assert.ok(plan.ok);
  const step = buildStepGraph(plan.value, { momentum: 0, weightDecay: 0.1, decay });
  assert.ok(step.ok, !step.ok ? step.message : '');
  const { session, initial } = await openStepSession(plan.value, step.value);
  const random = new Random(3);
  await session.step({
    input: float32Tensor(
      [N, 1, 4, 4],
      Float32Array.from({ length: N * 16 }, () => random.normal()),
    ),
    targets: float32Tensor(
      [N, 3],
      Float32Array.from({ length: N * 3 }, (_, i) => (i % 4 === 0 ? 1 : 0)),
    ),
    learning_rate: float32Tensor([], Float32Array.of(1)),
  });
  const state = session.state();
  await session.release();
  return new Map(
    [...initial.keys()]
      .filter((k) => !k.startsWith('momentum'))
      .map((k) => [k, Float32Array.from(state.get(k)!)]),
  );
}

describe('weight decay', () => {
  it("'all' also decays BN affine parameters and biases by lr * decay * p; conv and linear weights decay under both", async () => {
    const plan = planTraining(tiny(), N);
    assert.ok(plan.ok);
    const all = await oneStep('all');
    const weights = await oneStep('weights');
    for (const name of ['bn.weight', 'bn.bias', 'fc.bias', 'conv.weight', 'fc.weight']) {
      const before = plan.value.initializers.get(name)!.data as Float32Array;
      const a = all.get(name)!;
      const w = weights.get(name)!;
      const decaysOnlyUnderAll = !name.endsWith('.weight') || name === 'bn.weight';
      for (let i = 0; i < before.length; i++) {
        // p_all - p_weights = -lr * decay * p for parameters only 'all' decays, else 0.
        const expected = decaysOnlyUnderAll ? -0.1 * before[i]! : 0;
        assert.ok(
          Math.abs(a[i]! - w[i]! - expected) < 1e-5,
          `${name}[${i}]: all ${a[i]}, weights ${w[i]}, before ${before[i]}`,
        );
      }
    }
  });
});

describe('linear schedule', () => {
  it('warms up over 15% of the steps, peaks, and falls linearly to zero at the last step', () => {
    assert.equal(warmupStepsOf('linear', 100), 15);
    assert.ok(Math.abs(learningRateAt('linear', 0, 100, 0.1, 15) - 0.1 / 15) < 1e-12);
    assert.ok(Math.abs(learningRateAt('linear', 14, 100, 0.1, 15) - 0.1) < 1e-12);
    assert.ok(Math.abs(learningRateAt('linear', 15, 100, 0.1, 15) - 0.1) < 1e-12);
    // Halfway down the ramp from step 15 to step 99.
    assert.ok(Math.abs(learningRateAt('linear', 57, 100, 0.1, 15) - 0.05) < 1e-12);
    assert.equal(learningRateAt('linear', 99, 100, 0.1, 15), 0);
    assert.equal(learningRateAt('cosine', 50, 100, 0.1, 3) > 0, true);
  });
});
