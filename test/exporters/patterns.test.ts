/**
 * @file Exporter patterns on hand-built graphs: each variant must analyse, keep its function
 * under a permutation of its spaces, and merge with that permutation back to itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import type { SpaceAnalysis } from '../../src/graph/spaces.js';
import { float, GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel, type Dim, type Model } from '../../src/onnx/model.js';
import { float32Tensor, int64Tensor } from '../../src/onnx/tensor.js';
import { mergesBackToItself, syntheticData } from './helpers.js';
import { sineValues, sineWeight, spacesOf } from '../helpers.js';

const NORMALIZATION = { mean: 0.5, std: 0.25 };

/** Encodes and decodes (as a file would), analyses, and checks the merge-back invariance. */
async function assertMergesBack(
  model: Model,
  shape: [number, number, number],
): Promise<SpaceAnalysis> {
  const decoded = decodeModel(encodeModel(model));
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.message);
  const spaces = spacesOf(decoded.value);
  const diff = await mergesBackToItself(decoded.value, syntheticData(shape, 48), NORMALIZATION);
  assert.ok(diff < 1e-4, `merged (A, permuted A) differs from A by ${diff}`);
  return spaces;
}

/** A conv-relu-(flatten)-Gemm-relu-Gemm network on [N, 1, 6, 6]; `flatten` builds the flatten. */
function convNet(
  flatten: (b: GraphBuilder, x: string) => string,
  options: { transB?: 0 | 1; batch?: Dim; names?: 'torch' } = {},
): Model {
  const b = new GraphBuilder('patterns');
  const torch = options.names === 'torch';
  const x = b.input('input', [options.batch === undefined ? 'N' : options.batch, 1, 6, 6]);
  const convWeight = sineWeight(b, torch ? 'onnx::Conv_123' : 'conv.weight', [4, 1, 3, 3], 1);
  const conv = b.op(
    'Conv',
    [x, convWeight, b.weight(torch ? 'onnx::Conv_124' : 'conv.bias', float32Tensor([4]))],
    { pads: [1, 1, 1, 1] },
    torch ? '/conv/Conv' : 'conv',
  );
  const relu = b.op('Relu', [conv], {}, torch ? '/relu/Relu' : undefined);
  const flat = flatten(b, relu);
  const transB = options.transB ?? 1;
  // transB = 0 stores the weight as [in, out] (TensorFlow exporters); 1 as [out, in] (PyTorch).
  const fc1 = b.op('Gemm', [flat, sineWeight(b, 'fc1.weight', transB ? [5, 144] : [144, 5], 2)], {
    transB,
  });
  b.node(
    'Gemm',
    [b.op('Relu', [fc1]), sineWeight(b, 'fc2.weight', transB ? [3, 5] : [5, 3], 3)],
    { transB },
    {
      outputs: ['logits'],
    },
  );
  b.output('logits', [options.batch === undefined ? 'N' : options.batch, 3]);
  return b.build();
}

const flattenOp = (b: GraphBuilder, x: string): string => b.op('Flatten', [x], { axis: 1 });

/** PyTorch's `x.view(x.size(0), -1)` with constant folding off (opset 13: Unsqueeze axes as an input). */
const shapeChain = (b: GraphBuilder, x: string): string => {
  const shape = b.op('Shape', [x]);
  const zero = b.op('Constant', [], { value: int64Tensor([], [0]) });
  const batch = b.op('Gather', [shape, zero], { axis: 0 });
  const axes = b.op('Constant', [], { value: int64Tensor([1], [0]) });
  const batch1 = b.op('Unsqueeze', [batch, axes]);
  const rest = b.op('Constant', [], { value: int64Tensor([1], [-1]) });
  const target = b.op('Concat', [batch1, rest], { axis: 0 });
  return b.op('Reshape', [x, target]);
};

/** `x.view(-1, 144)` as exported: a constant target whose -1 is the batch. */
const minusOneReshape = (b: GraphBuilder, x: string): string =>
  b.op('Reshape', [x, b.weight('shape', int64Tensor([2], [-1, 144]))]);

test('Flatten and the Shape-Gather-Unsqueeze-Concat-Reshape chain give the same spaces and merge back', async () => {
  const flat = await assertMergesBack(convNet(flattenOp), [1, 6, 6]);
  const chain = await assertMergesBack(convNet(shapeChain), [1, 6, 6]);
  const reshape = await assertMergesBack(convNet(minusOneReshape), [1, 6, 6]);
  const columns = (s: SpaceAnalysis) =>
    s.bindings
      .filter((x) => x.initializer === 'fc1.weight' && x.role === 'columns')
      .map((x) => x.segments.map((g) => `${g.width}x${g.repeat}`).join('+'));
  assert.deepEqual(columns(flat), ['4x36']);
  assert.deepEqual(columns(chain), ['4x36']);
  assert.deepEqual(columns(reshape), ['4x36']);
});

test('Gemm with transB = 0 ([in, out] weights) and transB = 1 ([out, in]) both merge back', async () => {
  for (const transB of [0, 1] as const) {
    const spaces = await assertMergesBack(convNet(flattenOp, { transB }), [1, 6, 6]);
    const rows = spaces.bindings.find((x) => x.initializer === 'fc1.weight' && x.role === 'rows');
    assert.equal(
      rows?.axis,
      transB ? 0 : 1,
      `transB ${transB}: output features on axis ${rows?.axis}`,
    );
  }
});

test('Constant nodes holding weights and Identity aliases of weights (onnx::Gemm_12) are lifted to initializers', async () => {
  const b = new GraphBuilder('constants');
  const x = b.input('input', ['N', 1, 4, 4]);
  const flat = b.op('Flatten', [x]);
  // A weight stored as a Constant node (tf2onnx, constant folding off) ...
  const w1 = b.op(
    'Constant',
    [],
    { value: float32Tensor([6, 16], sineValues(96, 1)) },
    'onnx::Gemm_5',
  );
  // ... and one read through Identity (PyTorch's deduplicated parameters).
  const w2 = b.op('Identity', [sineWeight(b, 'fc2.weight', [5, 6], 2)], {}, 'onnx::Gemm_12');
  const h1 = b.op('Relu', [b.op('Gemm', [flat, w1], { transB: 1 })]);
  const h2 = b.op('Identity', [b.op('Relu', [b.op('Gemm', [h1, w2], { transB: 1 })])]);
  b.node(
    'Gemm',
    [h2, sineWeight(b, 'fc3.weight', [3, 5], 3)],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  b.output('logits', ['N', 3]);
  const model = b.build();
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  assert.ok(graph.value.model.graph.initializers.has('onnx::Gemm_5'));
  assert.ok(graph.value.model.graph.initializers.has('onnx::Gemm_12'));
  assert.equal(graph.value.model.graph.nodes.filter((n) => n.opType === 'Constant').length, 0);
  const spaces = await assertMergesBack(model, [1, 4, 4]);
  assert.deepEqual(
    spaces.spaces.map((s) => `${s.kind}:${s.width}`),
    ['fixed:1', 'plain:6', 'plain:5', 'fixed:3'],
  );
});

/** conv-BN-relu-GAP-Gemm with one BatchNormalization written for `opset` with `attributes`. */
function batchNormNet(
  opset: number,
  attributes: Record<string, number | { float: number }>,
): Model {
  const b = new GraphBuilder(`bn-opset${opset}`);
  const x = b.input('input', ['N', 2, 5, 5]);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [4, 2, 3, 3], 1)], {
    pads: [1, 1, 1, 1],
  });
  const bn = b.op(
    'BatchNormalization',
    [
      conv,
      b.weight('bn.weight', float32Tensor([4], Float32Array.of(1, 1.5, 0.5, 2))),
      b.weight('bn.bias', float32Tensor([4], Float32Array.of(0.1, -0.2, 0.3, 0))),
      b.weight('bn.running_mean', float32Tensor([4], Float32Array.of(0.2, 0, -0.1, 0.05))),
      b.weight('bn.running_var', float32Tensor([4], Float32Array.of(1, 2, 0.5, 1.5))),
    ],
    attributes,
  );
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [b.op('Relu', [bn])])]);
  // Gemm's bias C is optional only from opset 11.
  const bias = b.weight('fc.bias', float32Tensor([3], Float32Array.of(0.1, 0, -0.1)));
  b.node(
    'Gemm',
    [pooled, sineWeight(b, 'fc.weight', [3, 4], 2), bias],
    { transB: 1 },
    {
      outputs: ['logits'],
    },
  );
  b.output('logits', ['N', 3]);
  const model = b.build();
  return { ...model, opsetImports: [{ domain: '', version: opset }] };
}

test('BatchNormalization across opsets: spatial (opset 7), none (9), training_mode = 0 (15)', async () => {
  const variants: [number, Record<string, number | { float: number }>][] = [
    [7, { epsilon: float(1e-5), momentum: float(0.9), spatial: 1 }],
    [9, { epsilon: float(1e-5), momentum: float(0.9) }],
    [15, { epsilon: float(1e-5), momentum: float(0.9), training_mode: 0 }],
  ];
  for (const [opset, attributes] of variants) {
    const spaces = await assertMergesBack(batchNormNet(opset, attributes), [2, 5, 5]);
    const space = spaces.spaces.find((s) => s.parameters.includes('bn.running_var'));
    assert.equal(space?.width, 4, `opset ${opset}: BN parameters live on the conv's space`);
  }
});

test("PyTorch names ('onnx::Conv_123', '/conv/Conv') survive analysis, capture and merging", async () => {
  const spaces = await assertMergesBack(convNet(flattenOp, { names: 'torch' }), [1, 6, 6]);
  assert.ok(spaces.spaces.some((s) => s.producers.includes('/conv/Conv')));
  assert.ok(spaces.bindings.some((x) => x.initializer === 'onnx::Conv_123' && x.role === 'rows'));
});

test('dynamic batch dimensions: a named symbol, an unnamed dim and PyTorch\'s "batch" all merge', async () => {
  for (const batch of ['batch', null, 'N'] as const) {
    await assertMergesBack(convNet(minusOneReshape, { batch }), [1, 6, 6]);
  }
});

test('a fixed batch dimension of 1 (export without dynamic_axes) merges', async () => {
  const model = convNet(
    (b, x) => b.op('Reshape', [x, b.weight('shape', int64Tensor([2], [1, 144]))]),
    { batch: 1 },
  );
  await assertMergesBack(model, [1, 6, 6]);
});

test('graph inputs that duplicate initializers (keep_initializers_as_inputs) are weights, and merge back', async () => {
  const model = convNet(flattenOp);
  const withInputs: Model = {
    ...model,
    graph: {
      ...model.graph,
      inputs: [
        ...model.graph.inputs,
        ...[...model.graph.initializers].map(([name, t]) => ({ name, elemType: 1, shape: t.dims })),
      ],
    },
  };
  const decoded = decodeModel(encodeModel(withInputs));
  assert.ok(decoded.ok);
  assert.deepEqual(
    decoded.value.graph.inputs.map((i) => i.name),
    ['input'],
  );
  await assertMergesBack(withInputs, [1, 6, 6]);
});

/** Gemm-Relu x3 where the 2nd and 3rd layers read the same [6, 6] initializer (tied weights). */
function tiedNet(): Model {
  const b = new GraphBuilder('tied');
  const x = b.input('input', ['N', 1, 4, 4]);
  const shared = sineWeight(b, 'shared.weight', [6, 6], 2);
  const h1 = b.op('Relu', [
    b.op('Gemm', [b.op('Flatten', [x]), sineWeight(b, 'fc1.weight', [6, 16], 1)], { transB: 1 }),
  ]);
  const h2 = b.op('Relu', [b.op('Gemm', [h1, shared], { transB: 1 })]);
  const h3 = b.op('Relu', [b.op('Gemm', [h2, shared], { transB: 1 })]);
  b.node(
    'Gemm',
    [h3, sineWeight(b, 'fc4.weight', [3, 6], 3)],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  b.output('logits', ['N', 3]);
  return b.build();
}

test('an initializer shared by two nodes ties their spaces (one space, permuted once)', async () => {
  const spaces = await assertMergesBack(tiedNet(), [1, 4, 4]);
  assert.equal(spaces.bindings.filter((x) => x.initializer === 'shared.weight').length, 2);
});
