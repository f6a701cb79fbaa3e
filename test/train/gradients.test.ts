/** @file Every gradient rule of the step graph against central finite differences of the graph's own loss. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor, int64Tensor, type Tensor } from '../../src/onnx/tensor.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc.js';
import { Random } from '../../src/tensor/random.js';
import { planTraining } from '../../src/train/plan.js';
import { buildStepGraph, momentumName, type ConvWeightGrad } from '../../src/train/step-graph.js';
import { batchNorm, conv, linear, relu, type LayerContext } from '../../src/zoo/layers.js';
import { vit } from '../../src/zoo/vit.js';
import { openStepSession } from './helpers.js';

const N = 4;
const C = 2;
const H = 6;
const K = 3;

/** A tiny classifier: `body` maps the [N, C, H, W] input to [N, channels, size, size]; a 2-layer MLP head follows. */
function tinyModel(
  body: (ctx: LayerContext, x: string) => { value: string; channels: number; size: number },
  inputChannels = C,
): Model {
  const builder = new GraphBuilder('tiny');
  const ctx = { builder, random: new Random(5) };
  const { value, channels, size } = body(ctx, builder.input('input', ['N', inputChannels, H, H]));
  const flat = builder.op('Flatten', [value], { axis: 1 });
  const hidden = relu(ctx, linear(ctx, 'fc1', flat, channels * size * size, 5));
  builder.node('Identity', [linear(ctx, 'fc2', hidden, 5, K)], {}, { outputs: ['logits'] });
  builder.output('logits', ['N', K]);
  return builder.build();
}

/** A stateful step session on `model` (momentum 0, no decay) and one seeded batch to feed it. */
async function stepSetup(
  model: Model,
  batch: number,
  options: { convWeightGrad?: ConvWeightGrad; block?: number } = {},
) {
  const plan = planTraining(model, batch);
  assert.ok(plan.ok, !plan.ok ? plan.message : '');
  const step = buildStepGraph(plan.value, {
    momentum: 0,
    weightDecay: 0,
    ...(options.convWeightGrad ? { convWeightGrad: options.convWeightGrad } : {}),
    ...(options.block !== undefined ? { nchwcBlock: options.block } : {}),
  });
  assert.ok(step.ok, !step.ok ? step.message : '');
  // Exactly the state inputs: weights, running statistics and the weights' momenta.
  const { session, initial } = await openStepSession(plan.value, step.value);
  const random = new Random(3);
  const inputSize = plan.value.inputShape.reduce((a, b) => a * b, 1);
  const feeds = {
    input: float32Tensor(
      plan.value.inputShape,
      Float32Array.from({ length: inputSize }, () => random.normal()),
    ),
    targets: float32Tensor(
      [batch, K],
      Float32Array.from({ length: batch * K }, (_, i) => (i % K === Math.floor(i / K) % K ? 1 : 0)),
    ),
    learning_rate: float32Tensor([], Float32Array.of(0)),
  };
  return { plan: plan.value, step: step.value, session, initial, feeds, random };
}

/**
 * For each weight tensor, compares the analytic directional derivative g . d (the step graph's
 * gradient, read from the new momentum with momentum 0 and no decay) with
 * (L(w + eps d) - L(w - eps d)) / (2 eps) along a random direction d. Returns the worst
 * relative error and the weight it occurred in.
 */
async function worstGradientError(
  model: Model,
  convWeightGrad: ConvWeightGrad = 'im2col',
  floor = 1e-3,
): Promise<{ error: number; weight: string }> {
  const { plan, session, initial, feeds, random } = await stepSetup(model, N, { convWeightGrad });
  const weights = [...plan.initializers].filter(([name]) => !name.includes('running')) as Array<
    [string, Tensor<'float32'>]
  >;
  const lossAt = async (state: Map<string, Tensor<'float32'>>): Promise<number> => {
    session.setState(state);
    return (await session.step(feeds)).loss!.data[0]!;
  };
  await lossAt(initial);
  const gradients = new Map(
    [...session.state()].map(([name, data]) => [name, Float32Array.from(data)]),
  );
  let worst = { error: 0, weight: '' };
  const eps = 1e-3;
  for (const [name, tensor] of weights) {
    const g = gradients.get(momentumName(name))!;
    const d = Float32Array.from(g, () => random.normal());
    const analytic = g.reduce((sum, v, i) => sum + v * d[i]!, 0);
    const shifted = (sign: number) =>
      new Map(initial).set(
        name,
        float32Tensor(
          tensor.dims,
          tensor.data.map((v, i) => v + sign * eps * d[i]!),
        ),
      );
    const numeric = ((await lossAt(shifted(1))) - (await lossAt(shifted(-1)))) / (2 * eps);
    const error =
      Math.abs(numeric - analytic) / Math.max(floor, Math.abs(numeric) + Math.abs(analytic));
    if (error > worst.error) worst = { error, weight: name };
  }
  await session.release();
  return worst;
}

// NOTE: float32 losses; central differences with eps 1e-3 agree to ~1e-4 relative on these
// shapes, so 1e-2 catches any wrong rule (a wrong rule is off by O(1)) without flaking.
const TOLERANCE = 1e-2;

const cases: Array<[string, Parameters<typeof tinyModel>[0]]> = [
  [
    'Conv 3x3 stride 1 (input and weight grads), Gemm, Relu, Flatten, Identity',
    (ctx, x) => ({ value: conv(ctx, 'c2', conv(ctx, 'c1', x, C, 3), 3, 4), channels: 4, size: H }),
  ],
  [
    'Conv 3x3 stride 2 (ConvTranspose input grad)',
    (ctx, x) => ({
      value: conv(ctx, 'c2', conv(ctx, 'c1', x, C, 3), 3, 4, { stride: 2 }),
      channels: 4,
      size: H / 2,
    }),
  ],
  [
    'two stride-2 Convs reading one tensor (their input gradients as one ConvTranspose)',
    (ctx, x) => {
      const a = conv(ctx, 'c1', x, C, 3);
      return {
        value: ctx.builder.op('Add', [
          // Relu on one branch so the two output gradients differ.
          relu(ctx, conv(ctx, 'c2', a, 3, 4, { stride: 2 })),
          conv(ctx, 'c3', a, 3, 4, { stride: 2 }),
        ]),
        channels: 4,
        size: H / 2,
      };
    },
  ],
  [
    'Conv 1x1 with bias',
    (ctx, x) => ({
      value: conv(ctx, 'c2', conv(ctx, 'c1', x, C, 3), 3, 2, { kernel: 1, bias: true }),
      channels: 2,
      size: H,
    }),
  ],
  [
    'BatchNormalization with batch statistics, then Relu',
    (ctx, x) => ({
      value: relu(ctx, batchNorm(ctx, 'bn', conv(ctx, 'c1', x, C, 3), 3)),
      channels: 3,
      size: H,
    }),
  ],
  [
    'MaxPool 2x2',
    (ctx, x) => ({
      value: ctx.builder.op('MaxPool', [conv(ctx, 'c1', x, C, 3)], {
        kernel_shape: [2, 2],
        strides: [2, 2],
      }),
      channels: 3,
      size: H / 2,
    }),
  ],
  [
    'GlobalAveragePool',
    (ctx, x) => ({
      value: ctx.builder.op('GlobalAveragePool', [conv(ctx, 'c1', x, C, 3)]),
      channels: 3,
      size: 1,
    }),
  ],
  [
    'Add of a residual branch (gradients summed over two consumers)',
    (ctx, x) => {
      const a = conv(ctx, 'c1', x, C, 3);
      return {
        value: relu(
          ctx,
          ctx.builder.op('Add', [a, batchNorm(ctx, 'bn', conv(ctx, 'c2', a, 3, 3), 3)]),
        ),
        channels: 3,
        size: H,
      };
    },
  ],
];

/**
 * `model` with every parameter redrawn from N(0, 0.5^2): the zoo's transformer init (std 0.02)
 * gives gradients so small that the relative error's floor would hide a wrong rule.
 */
function rescaled(model: Model): Model {
  const random = new Random(11);
  const initializers = new Map(model.graph.initializers);
  for (const [name, t] of initializers) {
    if (t.dtype !== 'float32' || t.dims.length === 0 || name.includes('running')) continue;
    const size = t.dims.reduce((a, b) => a * b, 1);
    initializers.set(
      name,
      float32Tensor(
        t.dims,
        Float32Array.from({ length: size }, () => 0.5 * random.normal()),
      ),
    );
  }
  return { ...model, graph: { ...model.graph, initializers } };
}

/** A tiny zoo ViT on 8x8 inputs: 4 patches plus the class token, dim 8, 2 heads, 2 blocks. */
function tinyVit(): Model {
  const builder = new GraphBuilder('tiny-vit');
  const ctx = { builder, random: new Random(5) };
  const x = builder.input('input', ['N', C, 8, 8]);
  const shape = { dim: 8, depth: 2, heads: 2, mlpRatio: 2, patch: 4 };
  builder.node('Identity', [vit(ctx, x, [C, 8, 8], shape, K)], {}, { outputs: ['logits'] });
  builder.output('logits', ['N', K]);
  return rescaled(builder.build());
}

/** Patch tokens [N, T, 3] of which a Slice keeps tokens 1 and 2 for a Gemm head. */
function tokenSliceModel(): Model {
  const builder = new GraphBuilder('token-slice');
  const ctx = { builder, random: new Random(5) };
  const x = builder.input('input', ['N', C, H, H]);
  const ints = (name: string, v: number[]) => builder.weight(name, int64Tensor([v.length], v));
  const patches = conv(ctx, 'c1', x, C, 3, { kernel: 3, stride: 3, pad: 0, bias: true }); // [N, 3, 2, 2]
  const tokens = builder.op(
    'Transpose',
    [builder.op('Reshape', [patches, ints('s1', [0, 3, -1])])],
    {
      perm: [0, 2, 1],
    },
  );
  const kept = builder.op('Slice', [
    tokens,
    ints('start', [1]),
    ints('end', [3]),
    ints('axes', [1]),
  ]);
  const flat = builder.op('Reshape', [kept, ints('s2', [0, -1])]);
  builder.node('Identity', [linear(ctx, 'fc', flat, 6, K)], {}, { outputs: ['logits'] });
  builder.output('logits', ['N', K]);
  return rescaled(builder.build());
}

describe('step graph gradients vs finite differences', () => {
  it('ViT: patch Conv, class token (Expand, Concat), positions, LayerNorm, attention (MatMul of activations, Softmax), GELU (Div, Erf, Mul), Gather', async () => {
    // NOTE: a float32 loss near 1 resolves central differences to ~1e-4 absolute; with
    // derivatives down to 1e-3 here (a LayerNorm weight, a key projection), the floor is set
    // so that noise stays 2.5x inside the tolerance. Wrong rules are off by O(1) elsewhere.
    const worst = await worstGradientError(tinyVit(), 'im2col', 2e-2);
    assert.ok(
      worst.error < TOLERANCE,
      `gradient of ${worst.weight} is off by ${worst.error.toExponential(2)} (relative)`,
    );
  });
  it('Slice along tokens', async () => {
    const worst = await worstGradientError(tokenSliceModel());
    assert.ok(
      worst.error < TOLERANCE,
      `gradient of ${worst.weight} is off by ${worst.error.toExponential(2)} (relative)`,
    );
  });
  for (const [name, body] of cases) {
    it(name, async () => {
      const worst = await worstGradientError(tinyModel(body));
      assert.ok(
        worst.error < TOLERANCE,
        `gradient of ${worst.weight} is off by ${worst.error.toExponential(2)} (relative)`,
      );
    });
  }
  it('sibling stride-2 Convs share one ConvTranspose (the case above checks its values)', async () => {
    const sibling = cases.find(([name]) => name.startsWith('two stride-2'))![1];
    const { step, session } = await stepSetup(tinyModel(sibling), N);
    await session.release();
    const transposed = step.model.graph.nodes.filter((node) => node.opType === 'ConvTranspose');
    assert.equal(transposed.length, 1);
  });
  it('Conv weight gradient expressed as a Conv over batch-transposed tensors', async () => {
    const worst = await worstGradientError(tinyModel(cases[1]![1]), 'conv');
    assert.ok(
      worst.error < TOLERANCE,
      `gradient of ${worst.weight} is off by ${worst.error.toExponential(2)} (relative)`,
    );
  });
});

/** The gradient of every weight after one step (momentum 0, no decay, learning rate 0). */
async function stepGradients(
  model: Model,
  batch: number,
  block: number | undefined,
): Promise<{ gradients: Map<string, Float32Array>; blockedConvs: number }> {
  const { step, session, feeds } = await stepSetup(
    model,
    batch,
    block !== undefined ? { block } : {},
  );
  await session.step(feeds);
  const gradients = new Map<string, Float32Array>();
  for (const [name, data] of session.state())
    if (name.startsWith('momentum:')) gradients.set(name, Float32Array.from(data));
  await session.release();
  const blockedConvs = step.model.graph.nodes.filter(
    (node) => node.domain === 'com.microsoft.nchwc' && node.opType === 'Conv',
  ).length;
  return { gradients, blockedConvs };
}

// NOTE: at a block's width the tiny model's activations are large enough that central
// differences straddle Relu kinks, so the blocked graph is checked against the plain graph,
// whose every rule passes the finite-difference tests above, at the same weights and batch.
describe('step graph gradients in the blocked (NCHWc) layout equal the plain graph', async () => {
  const block = await nchwcBlockSize();
  // Channels and batch at one block so every Conv, input and weight gradient takes the
  // blocked path; a wrong filter order or reorder would be off by O(1).
  const width = block ?? 8;
  // Each case with the number of Convs the blocked graph must run blocked (forward, input
  // gradient (stride 1 and not of the graph input) and weight gradient of each Conv), and the
  // number of blocks its input channels and batch span.
  const blockedCases: Array<[string, Parameters<typeof tinyModel>[0], number, number?]> = [
    [
      'Conv 3x3 stride 1 (blocked forward, input and weight grads), BN, Relu',
      (ctx, x) => ({
        value: relu(
          ctx,
          batchNorm(
            ctx,
            'bn',
            conv(ctx, 'c2', conv(ctx, 'c1', x, width, width), width, width),
            width,
          ),
        ),
        channels: width,
        size: H,
      }),
      5,
    ],
    [
      'Conv 3x3 stride 2 and Conv 1x1 stride 2 with bias (blocked dilated weight grads)',
      (ctx, x) => {
        const a = conv(ctx, 'c1', x, width, width);
        return {
          value: ctx.builder.op('Add', [
            conv(ctx, 'c2', a, width, 2 * width, { stride: 2 }),
            conv(ctx, 'c3', a, width, 2 * width, { kernel: 1, stride: 2, bias: true }),
          ]),
          channels: 2 * width,
          size: H / 2,
        };
      },
      6,
    ],
    [
      'stride 2 down to odd planes and a 2x2 kernel (dilated weight grads sliced to the kernel)',
      (ctx, x) => {
        const a = conv(ctx, 'c1', x, width, width, { stride: 2 }); // 6x6 -> 3x3
        const c = conv(ctx, 'c2', a, width, width, { stride: 2 }); // 3x3 -> 2x2
        return {
          value: conv(ctx, 'c3', c, width, width, { kernel: 2, stride: 2 }), // 2x2 -> 1x1
          channels: width,
          size: 1,
        };
      },
      6,
    ],
    [
      'two blocks of channels and of batch (the outer block order of every reorder)',
      (ctx, x) => ({
        value: conv(
          ctx,
          'c2',
          relu(ctx, conv(ctx, 'c1', x, 2 * width, 2 * width)),
          2 * width,
          4 * width,
          { stride: 2 },
        ),
        channels: 4 * width,
        size: H / 2,
      }),
      4,
      2,
    ],
  ];
  for (const [name, body, expectedBlocked, blocks = 1] of blockedCases) {
    it(name, { skip: block === undefined && 'onnxruntime has no NCHWc kernels here' }, async () => {
      const channels = blocks * width;
      const { gradients: blocked, blockedConvs } = await stepGradients(
        tinyModel(body, channels),
        channels,
        block,
      );
      assert.equal(blockedConvs, expectedBlocked);
      const { gradients: plain } = await stepGradients(
        tinyModel(body, channels),
        channels,
        undefined,
      );
      assert.equal(blocked.size, plain.size);
      for (const [weight, expected] of plain) {
        const actual = blocked.get(weight)!;
        const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6);
        const worst = actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0);
        assert.ok(worst < 1e-4 * scale, `${weight}: off by ${(worst / scale).toExponential(2)}`);
      }
    });
  }
});
