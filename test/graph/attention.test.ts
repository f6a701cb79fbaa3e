/**
 * @file Attention in hand-built graphs, against onnxruntime running the permuted model: the
 * variants exporters write (a scale after the head split, a per-head bias on the scores), and
 * the cases the analysis must refuse rather than follow wrongly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor, int64Tensor } from '../../src/onnx/tensor.js';
import { probeFor, runFirstOutput } from '../exporters/helpers.js';
import { maxAbsDiff, spacesOf } from '../helpers.js';

const T = 3;
const C = 8;
const HEADS = 2;
const D = C / HEADS;

function weight(b: GraphBuilder, name: string, dims: number[], seed: number): string {
  const count = dims.reduce((x, y) => x * y, 1);
  return b.weight(
    name,
    float32Tensor(
      dims,
      Float32Array.from({ length: count }, (_, i) => 0.5 * Math.sin(i * 1.3 + seed)),
    ),
  );
}

interface Variant {
  /** Multiply the queries by a scalar after their heads are split (timm, PyTorch's SDPA export). */
  readonly scaleAfterSplit?: boolean;
  /** Add a [1, heads, T, T] bias to the scores (relative position bias). */
  readonly headBias?: boolean;
  /** Something between the attention output and the output projection. */
  readonly between?: (b: GraphBuilder, x: string) => string;
}

/**
 * input [N, T, 4] - MatMul to q, k, v (8 = 2 heads of 4) - heads split - softmax(q k^T) v -
 * heads joined - MatMul(8 -> 4) - mean over tokens - Gemm(4 -> 3).
 */
function attentionNet(variant: Variant = {}): Model {
  const b = new GraphBuilder('attention');
  const x = b.input('input', ['N', T, 4]);
  const split = b.weight('split', int64Tensor([4], [0, T, HEADS, D]));
  const join = b.weight('join', int64Tensor([3], [0, T, C]));
  const project = (name: string, seed: number, perm: number[]): string =>
    b.op(
      'Transpose',
      [
        b.op('Reshape', [
          b.op('Add', [
            b.op('MatMul', [x, weight(b, `${name}.weight`, [4, C], seed)], {}, name),
            weight(b, `${name}.bias`, [C], seed + 10),
          ]),
          split,
        ]),
      ],
      { perm },
    );
  let q = project('q', 1, [0, 2, 1, 3]);
  if (variant.scaleAfterSplit === true)
    q = b.op('Mul', [q, b.weight('scale', float32Tensor([], Float32Array.of(0.5)))]);
  const k = project('k', 2, [0, 2, 3, 1]);
  const v = project('v', 3, [0, 2, 1, 3]);
  let scores = b.op('MatMul', [q, k], {}, 'scores');
  if (variant.headBias === true)
    scores = b.op('Add', [scores, weight(b, 'bias', [1, HEADS, T, T], 4)]);
  const attended = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), v], {}, 'attended');
  let joined = b.op('Reshape', [b.op('Transpose', [attended], { perm: [0, 2, 1, 3] }), join]);
  if (variant.between !== undefined) joined = variant.between(b, joined);
  const out = b.op('MatMul', [joined, weight(b, 'proj.weight', [C, 4], 5)], {}, 'proj');
  const pooled = b.op('ReduceMean', [b.op('Relu', [out])], { axes: [1], keepdims: 0 });
  b.node('Gemm', [pooled, weight(b, 'head', [3, 4], 6)], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', ['N', 3]);
  return b.build();
}

function analyze(model: Model) {
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  return analyzeSpaces(graph.value);
}

async function assertPermutationKeepsFunction(model: Model, heads: boolean): Promise<void> {
  const permuted = permuteChannels(model, 5, { heads });
  assert.ok(permuted.ok, permuted.ok ? '' : permuted.message);
  const input = probeFor([T, 4], 3);
  const diff = maxAbsDiff(
    await runFirstOutput(model, input, [T, 4], 3),
    await runFirstOutput(permuted.value.model, input, [T, 4], 3),
  );
  assert.ok(diff < 1e-5, `the permuted model differs by ${diff}`);
}

test('attention: Q/K tied and V in heads, read before the split; heads shuffled as wholes keep the function', async () => {
  const model = attentionNet();
  const spaces = spacesOf(model);
  assert.equal(spaces.attention.length, 1);
  const { queryKey, value, inPlace } = spaces.attention[0]!;
  assert.equal(inPlace, undefined);
  assert.deepEqual(spaces.spaces[queryKey]!.producers, ['q', 'k']);
  assert.equal(spaces.spaces[queryKey]!.groups, HEADS);
  assert.deepEqual(spaces.spaces[value]!.consumers, ['proj']);
  await assertPermutationKeepsFunction(model, true);
});

test('attention: a scale applied after the head split leaves the queries read before it', async () => {
  const model = attentionNet({ scaleAfterSplit: true });
  const spaces = spacesOf(model);
  const qk = spaces.spaces[spaces.attention[0]!.queryKey]!;
  // The site is the [N, T, C] projection output, channels last, not the split [N, h, T, d].
  assert.equal(spaces.layouts.get(qk.site!.value)?.heads, undefined);
  assert.equal(qk.site!.axis, 2);
  await assertPermutationKeepsFunction(model, true);
});

test('attention: a per-head bias on the scores keeps heads in place; within heads stays exact', async () => {
  const model = attentionNet({ headBias: true });
  const spaces = spacesOf(model);
  assert.equal(spaces.attention[0]!.inPlace, true);
  // permuteChannels leaves in-place heads where they are, so the copy computes the same.
  await assertPermutationKeepsFunction(model, true);
});

test('EXPECTED FAILURE - a reduction over attention heads is refused in one line', () => {
  // The values plus their mean over the heads: the mean mixes heads.
  const model = attentionNet();
  const nodes = model.graph.nodes.map((n) =>
    n.name === 'attended' ? { ...n, outputs: ['attended_raw'] } : n,
  );
  const index = nodes.findIndex((n) => n.outputs[0] === 'attended_raw');
  nodes.splice(
    index + 1,
    0,
    {
      name: 'mean_heads',
      opType: 'ReduceMean',
      domain: '',
      inputs: ['attended_raw'],
      outputs: ['heads_mean'],
      attributes: { axes: { type: 'ints', value: [1] } },
    },
    {
      name: 'plus_mean',
      opType: 'Add',
      domain: '',
      inputs: ['attended_raw', 'heads_mean'],
      outputs: ['attended'],
      attributes: {},
    },
  );
  const spaces = analyze({ ...model, graph: { ...model.graph, nodes } });
  assert.equal(spaces.ok, false);
  assert.match(
    spaces.ok ? '' : spaces.message,
    /^Node 'mean_heads' \(ReduceMean\) reduces '\S+', whose channels are split into attention heads; zipit cannot follow it\.$/,
  );
});

test('EXPECTED FAILURE - a statistic over the channels broadcast back by a per-channel scale is refused', () => {
  const b = new GraphBuilder('free-broadcast');
  const x = b.input('input', ['N', T, 4]);
  const h = b.op('MatMul', [x, weight(b, 'w1', [4, C], 1)], {}, 'fc1');
  const mean = b.op('ReduceMean', [h], { axes: [-1], keepdims: 1 });
  const spread = b.op('Mul', [mean, weight(b, 'g', [C], 2)], {}, 'spread');
  const y = b.op('Add', [h, spread]);
  const pooled = b.op('ReduceMean', [y], { axes: [1], keepdims: 0 });
  b.node('Gemm', [pooled, weight(b, 'head', [3, C], 3)], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', ['N', 3]);
  const spaces = analyze(b.build());
  assert.equal(spaces.ok, false);
  assert.match(
    spaces.ok ? '' : spaces.message,
    /^Node 'spread' \(Mul\) broadcasts '\S+', a value without channels \(a statistic over them\), to \[N, 3, 8\]; zipit cannot tell which channels it then has\.$/,
  );
});

test('a Slice that reverses the channels (torch.flip) is a barrier, not a pass-through', async () => {
  const b = new GraphBuilder('flip');
  const x = b.input('input', ['N', T, 4]);
  const h = b.op('Relu', [b.op('MatMul', [x, weight(b, 'w1', [4, C], 1)], {}, 'fc1')]);
  const ints = (name: string, values: number[]) =>
    b.weight(name, int64Tensor([values.length], values));
  const flipped = b.op(
    'Slice',
    [h, ints('starts', [-1]), ints('ends', [-(2 ** 62)]), ints('axes', [2]), ints('steps', [-1])],
    {},
    'flip',
  );
  const out = b.op('MatMul', [flipped, weight(b, 'w2', [C, 4], 2)], {}, 'fc2');
  const pooled = b.op('ReduceMean', [out], { axes: [1], keepdims: 0 });
  b.node('Gemm', [pooled, weight(b, 'head', [3, 4], 3)], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', ['N', 3]);
  const model = b.build();
  const spaces = spacesOf(model);
  const fc1 = spaces.spaces.find((s) => s.producers.includes('fc1'))!;
  assert.equal(fc1.fixedBy, "node 'flip' (Slice)");
  await assertPermutationKeepsFunction(model, false);
});

test('EXPECTED FAILURE - a Transpose that moves the batch axis is refused in one line', () => {
  const model = attentionNet({
    between: (b, joined) =>
      b.op('Transpose', [b.op('Transpose', [joined], { perm: [1, 0, 2] }, 'sequence_first')], {
        perm: [1, 0, 2],
      }),
  });
  const spaces = analyze(model);
  assert.equal(spaces.ok, false);
  assert.match(
    spaces.ok ? '' : spaces.message,
    /^Node 'sequence_first' \(Transpose\) moves the batch axis of '\S+'; zipit follows activations whose first axis is the batch/,
  );
});
