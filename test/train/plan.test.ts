/** @file The training planner: shape arithmetic folded at the plan's batch size, and one-line refusals of what it cannot differentiate. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor, int64Tensor, tensorToNumbers } from '../../src/onnx/tensor.js';
import { planTraining } from '../../src/train/plan.js';
import { buildZooModel } from '../../src/zoo/architectures.js';

/** [N, 1, 4, 4] input through `body` to [N, 3] logits. */
function model(body: (b: GraphBuilder, x: string) => string): Model {
  const b = new GraphBuilder('plan');
  const x = b.input('input', ['N', 1, 4, 4]);
  b.node('Identity', [body(b, x)], {}, { outputs: ['logits'] });
  b.output('logits', ['N', 3]);
  return b.build();
}

const ints = (b: GraphBuilder, name: string, values: number[]): string =>
  b.weight(name, int64Tensor([values.length], values));

describe('planTraining', () => {
  it("folds the zoo ViT's class-token shape (Shape, Slice, Concat) to [batch, 1, 1] and keeps scalars constant", () => {
    const zoo = buildZooModel({
      arch: 'vit',
      width: 1,
      seed: 1,
      inputShape: [1, 28, 28],
      classLabels: [0, 1, 2],
      preprocessing: { mean: [0], std: [1] },
    });
    assert.ok(zoo.ok);
    const plan = planTraining(zoo.value, 6);
    assert.ok(plan.ok, plan.ok ? '' : plan.message);
    const expand = plan.value.nodes.find((p) => p.op === 'Expand')!;
    assert.deepEqual(tensorToNumbers(plan.value.constants.get(expand.node.inputs[1]!)!), [6, 1, 1]);
    assert.deepEqual(expand.outputShape, [6, 1, 64]);
    assert.ok(!plan.value.nodes.some((p) => (p.node.opType as string) === 'Shape'));
    // Every float tensor of rank 1 or more is a parameter; scalars and integers never change.
    for (const [name, t] of zoo.value.graph.initializers) {
      const parameter = t.dtype === 'float32' && t.dims.length > 0;
      assert.equal(plan.value.initializers.has(name), parameter, name);
      assert.equal(plan.value.constants.has(name), !parameter, name);
    }
  });

  it('keeps the [1] parameters and statistics of a one-channel BatchNorm trainable', () => {
    const m = model((b, x) => {
      const ones = float32Tensor([1], Float32Array.of(1));
      const bn = b.op('BatchNormalization', [
        x,
        b.weight('bn.weight', ones),
        b.weight('bn.bias', float32Tensor([1])),
        b.weight('bn.running_mean', float32Tensor([1])),
        b.weight('bn.running_var', ones),
      ]);
      const flat = b.op('Flatten', [bn], { axis: 1 });
      return b.op(
        'Gemm',
        [flat, b.weight('w', float32Tensor([3, 16])), b.weight('c', float32Tensor([3]))],
        {
          transB: 1,
        },
      );
    });
    const plan = planTraining(m, 4);
    assert.ok(plan.ok, plan.ok ? '' : plan.message);
    assert.deepEqual([...plan.value.constants.keys()], []);
  });

  it('EXPECTED FAILURE - a model below opset 13, in one line', () => {
    const m = model((b, x) => b.op('Reshape', [x, ints(b, 'shape', [0, -1])]));
    const plan = planTraining({ ...m, opsetImports: [{ domain: '', version: 11 }] }, 4);
    assert.ok(!plan.ok);
    assert.equal(plan.message, 'Expected a model of opset 13 or later to train, got opset 11.');
  });

  const refusals: Array<[string, (b: GraphBuilder, x: string) => string, RegExp]> = [
    [
      'a division by an activation',
      (b, x) => {
        const flat = b.op('Flatten', [x], { axis: 1 });
        const w = b.weight('w', float32Tensor([3, 16]));
        const y = b.op('Gemm', [flat, w, b.weight('bias', float32Tensor([3]))], { transB: 1 });
        return b.op('Div', [y, y]);
      },
      /^Div '.*': the trainer divides by constants only\.$/,
    ],
    [
      'a Softmax over another axis than the last',
      (b, x) => {
        const s = b.op('Softmax', [x], { axis: 1 });
        return b.op('Reshape', [s, ints(b, 'shape', [0, -1])]);
      },
      /^Softmax '.*': the trainer normalises over the last axis only\.$/,
    ],
    [
      'a Gather of several indices',
      (b, x) => b.op('Gather', [x, ints(b, 'indices', [0, 1])], { axis: 2 }),
      /^Gather '.*': the trainer gathers one constant index \(a class token\) only\.$/,
    ],
    [
      'a Reshape with two -1',
      (b, x) => b.op('Reshape', [x, ints(b, 'shape', [0, -1, -1, 3])]),
      /^Reshape '.*': at most one -1 in the target shape, got \[0,-1,-1,3\]\.$/,
    ],
    [
      'a Gather of a shape value out of range',
      (b, x) => {
        const size = b.op('Gather', [b.op('Shape', [x]), b.weight('seven', int64Tensor([], [7]))]);
        return b.op('Reshape', [x, size]);
      },
      /^Gather '.*': the trainer folds shape arithmetic on 1-D int64 values only\.$/,
    ],
    [
      'a strided Slice',
      (b, x) =>
        b.op('Slice', [
          x,
          ints(b, 'starts', [0]),
          ints(b, 'ends', [4]),
          ints(b, 'axes', [2]),
          ints(b, 'steps', [2]),
        ]),
      /^Slice '.*': the trainer slices with constant starts, ends and axes and step 1 only\.$/,
    ],
  ];
  for (const [name, body, message] of refusals) {
    it(`EXPECTED FAILURE - ${name}, in one line`, () => {
      const plan = planTraining(model(body), 4);
      assert.ok(!plan.ok);
      assert.match(plan.message, message);
    });
  }
});
