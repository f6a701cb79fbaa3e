/**
 * @file Feature spaces of tiny hand-built graphs: where channel axes move (constants first,
 * MatMul's channels-last values, Concat/Flatten/Softmax axes, Gemm's transA, ReduceMean), each
 * either followed (and checked by permuting the model's spaces) or refused with one line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces, type SpaceAnalysis } from '../../src/graph/spaces.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Dim, Model } from '../../src/onnx/model.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { probeFor, runFirstOutput } from '../exporters/helpers.js';
import { maxAbsDiff, sineWeight, spacesOf } from '../helpers.js';

function analyze(model: Model) {
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  return analyzeSpaces(graph.value);
}

/** The one-line message of a refused model. */
function refusal(model: Model): string {
  const spaces = analyze(model);
  assert.ok(!spaces.ok, 'expected the analysis to refuse the model');
  assert.equal(spaces.reason, 'unsupported-model');
  assert.ok(!spaces.message.includes('\n'));
  return spaces.message;
}

const kinds = (s: SpaceAnalysis): string => s.spaces.map((x) => `${x.kind}:${x.width}`).join(' ');

/**
 * The invariance check: permuting every mergeable space along the analysis must leave the
 * function unchanged; a misplaced channel axis or a missed parameter changes it.
 */
async function assertPermutationKeepsFunction(
  model: Model,
  shape: readonly number[],
  n = 2,
): Promise<void> {
  const permuted = permuteChannels(model, 5);
  assert.ok(permuted.ok, permuted.ok ? '' : permuted.message);
  const input = probeFor(shape, n);
  const diff = maxAbsDiff(
    await runFirstOutput(model, input, shape, n),
    await runFirstOutput(permuted.value.model, input, shape, n),
  );
  assert.ok(diff < 1e-5, `the permuted model differs by ${diff}`);
}

/** GlobalAveragePool - Flatten - Gemm(4 -> 3) of `features` into the graph output `logits`. */
function classify(b: GraphBuilder, features: string, seed: number, batch: 'N' | 1 = 'N'): void {
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [features])]);
  b.node(
    'Gemm',
    [pooled, sineWeight(b, 'fc.weight', [3, 4], seed)],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  b.output('logits', [batch, 3]);
}

/** Conv(2 -> 4) - Sigmoid - `head` - Relu - GlobalAveragePool - Flatten - Gemm(4 -> 3) on [N, 2, 5, 5]. */
function convNet(head: (b: GraphBuilder, x: string) => string): Model {
  const b = new GraphBuilder('spaces');
  const x = b.input('input', ['N', 2, 5, 5]);
  const conv = b.op(
    'Conv',
    [x, sineWeight(b, 'conv.weight', [4, 2, 3, 3], 1), sineWeight(b, 'conv.bias', [4], 2)],
    { pads: [1, 1, 1, 1] },
    'conv',
  );
  classify(b, b.op('Relu', [head(b, b.op('Sigmoid', [conv]))]), 3);
  return b.build();
}

test('Add/Sub/Mul/Div with the constant first are traced like with the constant second', async () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    for (const constantFirst of [true, false]) {
      const model = convNet((b, x) => {
        const c = sineWeight(b, 'c', [1, 4, 1, 1], 4);
        return b.op(op, constantFirst ? [c, x] : [x, c], {}, 'arith');
      });
      const spaces = spacesOf(model);
      const conv = spaces.spaces.find((s) => s.producers.includes('conv'))!;
      const what = `${op}(${constantFirst ? 'c, x' : 'x, c'})`;
      assert.equal(kinds(spaces), 'fixed:2 plain:4 fixed:3', what);
      assert.ok(conv.parameters.includes('c'), `${what}: c lives on the conv's space`);
      const binding = spaces.bindings.find((x) => x.initializer === 'c');
      assert.equal(binding?.axis, 1, what);
      assert.equal(binding?.role, 'rows', what);
      await assertPermutationKeepsFunction(model, [2, 5, 5]);
    }
  }
});

test('EXPECTED FAILURE - a per-channel constant computed by nodes (constant folding off) is refused', () => {
  const model = convNet((b, x) =>
    b.op(
      'Mul',
      [x, b.op('Sigmoid', [sineWeight(b, 'c', [1, 4, 1, 1], 4)], {}, 'gate')],
      {},
      'scale',
    ),
  );
  assert.match(
    refusal(model),
    /^Node 'scale' \(Mul\) applies 'gate', a per-channel constant computed by other nodes; .* Export the model with constant folding on\.$/,
  );
});

test('Mul of two activations ties their spaces like a residual Add (exact under permutation)', async () => {
  const b = new GraphBuilder('gated');
  const x = b.input('input', ['N', 2, 5, 5]);
  const a = b.op(
    'Conv',
    [x, sineWeight(b, 'a.weight', [4, 2, 3, 3], 1)],
    { pads: [1, 1, 1, 1] },
    'a',
  );
  const g = b.op('Conv', [x, sineWeight(b, 'g.weight', [4, 2, 1, 1], 2)], {}, 'g');
  const gated = b.op('Mul', [b.op('Relu', [a]), b.op('Sigmoid', [g])]);
  classify(b, gated, 3);
  const model = b.build();
  const spaces = spacesOf(model);
  assert.equal(kinds(spaces), 'fixed:2 residual:4 fixed:3');
  assert.deepEqual(spaces.spaces[1]!.producers, ['a', 'g']);
  await assertPermutationKeepsFunction(model, [2, 5, 5]);
});

test('EXPECTED FAILURE - a channel Concat with an input zipit cannot trace names the node and the input', () => {
  const b = new GraphBuilder('concat-constant');
  const x = b.input('input', [1, 2, 4, 4]);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [3, 2, 1, 1], 1)]);
  const cat = b.op(
    'Concat',
    [b.op('Relu', [conv]), sineWeight(b, 'pad', [1, 2, 4, 4], 2)],
    { axis: 1 },
    'cat',
  );
  const mix = b.op('Conv', [cat, sineWeight(b, 'mix.weight', [4, 5, 1, 1], 3)]);
  classify(b, mix, 4, 1);
  assert.match(
    refusal(b.build()),
    /^Node 'cat' \(Concat\) concatenates 'pad', whose channels zipit could not trace .* Compute that input from the data, or fold the constant into the next layer, and export again\.$/,
  );
});

/** input [N, 3, 4] - MatMul(4 -> 5) - Relu - `rest` - logits: channels on the last axis. */
function sequenceNet(
  rest: (b: GraphBuilder, x: string, input: string) => string,
  outputShape: Dim[],
): Model {
  const b = new GraphBuilder('sequence');
  const input = b.input('input', ['N', 3, 4]);
  const h = b.op('Relu', [b.op('MatMul', [input, sineWeight(b, 'w1', [4, 5], 1)], {}, 'mm1')]);
  const out = rest(b, h, input);
  b.node('Identity', [out], {}, { outputs: ['logits'] });
  b.output('logits', outputShape);
  return b.build();
}

test('a Concat on the last axis of MatMul outputs (axis -1) is a channel Concat', async () => {
  const model = sequenceNet(
    (b, h, input) => {
      const other = b.op('Relu', [
        b.op('MatMul', [input, sineWeight(b, 'w2', [4, 6], 2)], {}, 'mm2'),
      ]);
      const cat = b.op('Concat', [h, other], { axis: -1 }, 'cat');
      return b.op('MatMul', [cat, sineWeight(b, 'w3', [11, 2], 3)], {}, 'mm3');
    },
    ['N', 3, 2],
  );
  const spaces = spacesOf(model);
  // The graph input is assumed NCHW (3 channels); the MatMuls read it along its last axis (4).
  assert.equal(kinds(spaces), 'fixed:3 fixed:4 plain:5 plain:6 fixed:2');
  assert.deepEqual(spaces.concats, [{ node: 'cat', value: 'cat', parts: [2, 3] }]);
  assert.equal(spaces.layouts.get('cat')?.axis, 2);
  await assertPermutationKeepsFunction(model, [3, 4]);
});

test('a Concat of MatMul outputs along the sequence axis (axis 1) ties their spaces: every position holds the same channels', async () => {
  const model = sequenceNet(
    (b, h, input) => {
      const other = b.op('Relu', [
        b.op('MatMul', [input, sineWeight(b, 'w2', [4, 5], 2)], {}, 'mm2'),
      ]);
      const cat = b.op('Concat', [h, other], { axis: 1 }, 'cat');
      return b.op('MatMul', [cat, sineWeight(b, 'w3', [5, 2], 3)], {}, 'mm3');
    },
    ['N', 6, 2],
  );
  const spaces = spacesOf(model);
  const space = spaces.spaces.find((s) => s.producers.includes('mm1'))!;
  assert.deepEqual(space.producers, ['mm1', 'mm2']);
  assert.equal(space.kind, 'residual');
  assert.equal(spaces.layouts.get('cat')?.axis, 2);
  assert.deepEqual(spaces.concats, []);
  await assertPermutationKeepsFunction(model, [3, 4]);
});

test('EXPECTED FAILURE - a Flatten that interleaves channels-last MatMul features is refused', () => {
  const model = sequenceNet(
    (b, h) => {
      const flat = b.op('Flatten', [h], { axis: 1 }, 'flat');
      return b.op('Gemm', [flat, sineWeight(b, 'fc.weight', [2, 15], 2)], { transB: 1 });
    },
    ['N', 2],
  );
  assert.match(
    refusal(model),
    /^Node 'flat' \(Flatten\) reshapes '\S+' \[N, 3, 5\] to \[N, 15\], which splits or interleaves its channels \(axis 2\); .*NCHW flattened from axis 1\)\.$/,
  );
});

test('a Softmax over channels-last MatMul features fixes them on their own axis', async () => {
  const model = sequenceNet(
    (b, h) => {
      const p = b.op('MatMul', [h, sineWeight(b, 'w2', [5, 6], 2)], {}, 'mm2');
      const soft = b.op('Softmax', [p], { axis: -1 }, 'soft');
      return b.op('MatMul', [soft, sineWeight(b, 'w3', [6, 2], 3)], {}, 'mm3');
    },
    ['N', 3, 2],
  );
  const spaces = spacesOf(model);
  assert.equal(kinds(spaces), 'fixed:3 fixed:4 plain:5 fixed:6 fixed:6 fixed:2');
  assert.equal(spaces.layouts.get('soft')?.axis, 2);
  const columns = spaces.bindings.find((x) => x.initializer === 'w3' && x.role === 'columns');
  assert.deepEqual(
    columns?.segments.map((s) => s.width),
    [6],
  );
  await assertPermutationKeepsFunction(model, [3, 4]);
});

test('EXPECTED FAILURE - a MaxPool over channels-last MatMul features is refused', () => {
  const model = sequenceNet(
    (b, h) => b.op('MaxPool', [h], { kernel_shape: [1] }, 'pool'),
    ['N', 3, 5],
  );
  assert.match(
    refusal(model),
    /^Node 'pool' \(MaxPool\) treats axis 1 as the channels, but the channels of '\S+' are on axis 2; zipit cannot follow it\.$/,
  );
});

test('EXPECTED FAILURE - a MatMul reading a conv map along its width (not its channels) is refused', () => {
  const b = new GraphBuilder('matmul-width');
  const x = b.input('input', ['N', 2, 3, 3]);
  const conv = b.op('Relu', [b.op('Conv', [x, sineWeight(b, 'conv.weight', [4, 2, 1, 1], 1)])]);
  b.node('MatMul', [conv, sineWeight(b, 'w', [3, 2], 2)], {}, { name: 'mm', outputs: ['logits'] });
  b.output('logits', ['N', 4, 3, 2]);
  assert.match(
    refusal(b.build()),
    /^Node 'mm' \(MatMul\) reads the features of '\S+' on axis 3, but their channels are on axis 1; zipit cannot merge through it\.$/,
  );
});

test("Gemm's transA: refused on a mergeable space, followed on the graph input (a fixed space)", async () => {
  const mergeable = new GraphBuilder('transA');
  const x = mergeable.input('input', [2, 4]);
  const h = mergeable.op('Relu', [
    mergeable.op('Gemm', [x, sineWeight(mergeable, 'w1', [6, 4], 1)], { transB: 1 }),
  ]);
  mergeable.node(
    'Gemm',
    [h, sineWeight(mergeable, 'w2', [2, 3], 2)],
    { transA: 1 },
    {
      name: 'fc2',
      outputs: ['logits'],
    },
  );
  mergeable.output('logits', [6, 3]);
  assert.match(
    refusal(mergeable.build()),
    /^Node 'fc2' \(Gemm\) has transA = 1: it reads the features of '\S+' on axis 0, but their channels are on axis 1, so zipit cannot merge them\. Export the layer with transA = 0 \(as PyTorch's nn\.Linear does\)\.$/,
  );

  // input [4, 2] read as A^T: the Gemm's 4 input features are the input's axis 0.
  const b = new GraphBuilder('transA-input');
  const input = b.input('input', [4, 2]);
  const first = b.op('Relu', [
    b.op('Gemm', [input, sineWeight(b, 'w1', [4, 6], 1)], { transA: 1 }),
  ]);
  b.node('Gemm', [first, sineWeight(b, 'w2', [6, 3], 2)], {}, { outputs: ['logits'] });
  b.output('logits', [2, 3]);
  const model = b.build();
  assert.equal(kinds(spacesOf(model)), 'fixed:2 fixed:4 plain:6 fixed:3');
  await assertPermutationKeepsFunction(model, [2], 4);
});

test('ReduceMean over h and w without keepdims (x.mean((2, 3))) feeds one column per channel', async () => {
  const b = new GraphBuilder('mean');
  const x = b.input('input', ['N', 2, 4, 4]);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [3, 2, 3, 3], 1)], {
    pads: [1, 1, 1, 1],
  });
  const mean = b.op('ReduceMean', [b.op('Relu', [conv])], { axes: [2, 3], keepdims: 0 });
  const h = b.op('Relu', [b.op('Gemm', [mean, sineWeight(b, 'w1', [5, 3], 2)], { transB: 1 })]);
  b.node('Gemm', [h, sineWeight(b, 'w2', [2, 5], 3)], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', ['N', 2]);
  const model = b.build();
  const columns = spacesOf(model).bindings.find(
    (s) => s.initializer === 'w1' && s.role === 'columns',
  );
  assert.deepEqual(
    columns?.segments.map((s) => [s.width, s.repeat]),
    [[3, 1]],
  );
  await assertPermutationKeepsFunction(model, [2, 4, 4]);
});

test('EXPECTED FAILURE - a weight op reading a value computed from constants only', () => {
  const b = new GraphBuilder('constant-input');
  b.input('input', ['N', 4]);
  const table = b.op('Sigmoid', [sineWeight(b, 'table', [2, 4], 1)]);
  b.node(
    'Gemm',
    [table, sineWeight(b, 'w', [3, 4], 2)],
    { transB: 1 },
    { name: 'fc', outputs: ['logits'] },
  );
  b.output('logits', [2, 3]);
  assert.match(
    refusal(b.build()),
    /^Node 'fc' reads '\S+', whose channels zipit could not trace\.$/,
  );
});

test('EXPECTED FAILURE - a Concat of values whose channels are on different axes', () => {
  const b = new GraphBuilder('concat-axes');
  const input = b.input('input', ['N', 3, 3]);
  const h = b.op('MatMul', [input, sineWeight(b, 'w1', [3, 3], 1)]);
  const cat = b.op('Concat', [input, h], { axis: 1 }, 'cat');
  b.node('MatMul', [cat, sineWeight(b, 'w2', [3, 2], 2)], {}, { outputs: ['logits'] });
  b.output('logits', ['N', 6, 2]);
  assert.match(
    refusal(b.build()),
    /^Node 'cat' \(Concat\) concatenates values whose channels are on different axes \(1, 2\); zipit cannot line them up\.$/,
  );
});

test('EXPECTED FAILURE - residual Adds whose channels do not line up: broadcast from the last axis, or of other widths', () => {
  // [N, 4] broadcast against [N, 4, 4, 4] lines its 4 features up with the width, not the channels.
  const broadcast = new GraphBuilder('broadcast');
  const x = broadcast.input('input', ['N', 2, 4, 4]);
  const conv = broadcast.op('Conv', [x, sineWeight(broadcast, 'conv.weight', [4, 2, 1, 1], 1)]);
  const pooled = broadcast.op('Flatten', [broadcast.op('GlobalAveragePool', [conv])]);
  const fc = broadcast.op('Gemm', [pooled, sineWeight(broadcast, 'fc.weight', [4, 4], 2)], {
    transB: 1,
  });
  broadcast.node('Add', [conv, fc], {}, { name: 'add', outputs: ['logits'] });
  broadcast.output('logits', ['N', 4, 4, 4]);
  assert.match(
    refusal(broadcast.build()),
    /^Node 'add' \(Add\) combines values whose channels do not line up\.$/,
  );

  const widths = new GraphBuilder('widths');
  const input = widths.input('input', ['N', 2, 4, 4]);
  const four = widths.op('Conv', [input, sineWeight(widths, 'a.weight', [4, 2, 1, 1], 1)], {}, 'a');
  const one = widths.op('Conv', [input, sineWeight(widths, 'b.weight', [1, 2, 1, 1], 2)], {}, 'b');
  widths.node('Add', [four, one], {}, { outputs: ['logits'] });
  widths.output('logits', ['N', 4, 4, 4]);
  assert.match(
    refusal(widths.build()),
    /^Values tied by a residual Add have 1 and 4 channels \(producers b, a\)\.$/,
  );
});

test('EXPECTED FAILURE - a weight shared by nodes whose channels do not line up', () => {
  const b = new GraphBuilder('shared');
  const x = b.input('input', ['N', 2]);
  const dense = (name: string, input: string, out: number, inputs: number, seed: number) =>
    b.op('Relu', [
      b.op(
        'Gemm',
        [input, sineWeight(b, `${name}.weight`, [out, inputs], seed)],
        { transB: 1 },
        name,
      ),
    ]);
  const shared = sineWeight(b, 'shared', [3, 10], 9);
  const cat = b.op('Concat', [dense('a', x, 6, 2, 1), dense('b', x, 4, 2, 2)], { axis: 1 });
  const left = b.op('Gemm', [cat, shared], { transB: 1 });
  const right = b.op('Gemm', [dense('c', x, 10, 2, 3), shared], { transB: 1 });
  b.node('Add', [left, right], {}, { outputs: ['logits'] });
  b.output('logits', ['N', 3]);
  assert.match(
    refusal(b.build()),
    /^Weight 'shared' is shared by nodes whose channels do not line up\.$/,
  );
});

test('EXPECTED FAILURE - a flatten of a map of unknown size', () => {
  const b = new GraphBuilder('unknown-size');
  const x = b.input('input', ['N', 2, 'H', 'W']);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [4, 2, 1, 1], 1)]);
  const flat = b.op('Flatten', [b.op('Relu', [conv])], { axis: 1 }, 'flat');
  b.node('MatMul', [flat, sineWeight(b, 'w', [64, 2], 2)], {}, { outputs: ['logits'] });
  b.output('logits', ['N', 2]);
  assert.match(refusal(b.build()), /^Node 'flat' flattens a map of unknown size\.$/);
});

test('EXPECTED FAILURE - a mergeable space that no weight op reads cannot be measured', () => {
  const b = new GraphBuilder('unread');
  const x = b.input('input', ['N', 2, 4, 4]);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [4, 2, 1, 1], 1)], {}, 'conv');
  b.node('Shape', [conv], {}, { outputs: ['shape'] });
  b.output('shape', [4]);
  assert.match(
    refusal(b.build()),
    /^Space 1 \(written by conv\) has no consumer to measure; zipit cannot merge it\.$/,
  );
});

test('a graph input whose channel dim is symbolic is read with the width of the weight reading it', async () => {
  const b = new GraphBuilder('symbolic-channels');
  const x = b.input('input', ['N', 'C', 4, 4]);
  const conv = b.op('Conv', [x, sineWeight(b, 'conv.weight', [4, 2, 3, 3], 1)], {
    pads: [1, 1, 1, 1],
  });
  classify(b, b.op('Relu', [conv]), 2);
  const model = b.build();
  const spaces = spacesOf(model);
  assert.equal(kinds(spaces), 'fixed:0 fixed:2 plain:4 fixed:3');
  const columns = spaces.bindings.find(
    (s) => s.initializer === 'conv.weight' && s.role === 'columns',
  );
  assert.deepEqual(
    columns?.segments.map((s) => s.width),
    [2],
  );
  await assertPermutationKeepsFunction(model, [2, 4, 4]);
});

/**
 * input [N, 1, 4, 4] - Conv 2x2 stride 2 (1 -> 6): 4 patches - flatten and transpose to tokens
 * [N, 4, 6] - class token in front (Concat along tokens of an Expand of a [1, 1, 6] parameter)
 * - positional embedding [1, 5, 6] added - MatMul(6 -> 8) - `gelu` - MatMul(8 -> 6) - residual
 * Add - `pool` to [N, 6] - Gemm(6 -> 3).
 */
function tokenNet(
  gelu: (b: GraphBuilder, x: string) => string,
  pool: (b: GraphBuilder, x: string) => string,
  opset = 17,
): Model {
  const b = new GraphBuilder('tokens');
  const input = b.input('input', ['N', 1, 4, 4]);
  const conv = b.op('Conv', [input, sineWeight(b, 'patch.weight', [6, 1, 2, 2], 1)], {
    kernel_shape: [2, 2],
    strides: [2, 2],
  });
  const flat = b.op('Reshape', [
    conv,
    b.weight('flat_shape', { dtype: 'int64', dims: [3], data: BigInt64Array.from([0n, 6n, -1n]) }),
  ]);
  const tokens = b.op('Transpose', [flat], { perm: [0, 2, 1] });
  const batch = b.op('Gather', [
    b.op('Shape', [input]),
    b.weight('zero', { dtype: 'int64', dims: [1], data: BigInt64Array.from([0n]) }),
  ]);
  const shape = b.op(
    'Concat',
    [batch, b.weight('one_one', { dtype: 'int64', dims: [2], data: BigInt64Array.from([1n, 1n]) })],
    { axis: 0 },
  );
  const cls = b.op('Expand', [sineWeight(b, 'cls', [1, 1, 6], 2), shape]);
  const joined = b.op('Concat', [cls, tokens], { axis: 1 }, 'cat');
  const x = b.op('Add', [joined, sineWeight(b, 'pos', [1, 5, 6], 3)]);
  const hidden = gelu(b, b.op('MatMul', [x, sineWeight(b, 'fc1.weight', [6, 8], 4)], {}, 'fc1'));
  const y = b.op('Add', [
    x,
    b.op('MatMul', [hidden, sineWeight(b, 'fc2.weight', [8, 6], 5)], {}, 'fc2'),
  ]);
  b.node(
    'Gemm',
    [pool(b, y), sineWeight(b, 'head', [3, 6], 6)],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  b.output('logits', ['N', 3]);
  const model = b.build();
  return { ...model, opsetImports: [{ domain: '', version: opset }] };
}

const erfGelu = (b: GraphBuilder, h: string): string => {
  const scaled = b.op('Div', [
    h,
    b.weight('sqrt2', float32Tensor([], Float32Array.of(Math.SQRT2))),
  ]);
  const one = b.weight('one', float32Tensor([], Float32Array.of(1)));
  const half = b.weight('half', float32Tensor([], Float32Array.of(0.5)));
  return b.op('Mul', [b.op('Mul', [h, b.op('Add', [b.op('Erf', [scaled]), one])]), half]);
};
const axes = (b: GraphBuilder, name: string, values: bigint[]): string =>
  b.weight(name, { dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values) });

test('tokens: class token, positional embedding, GELU written out, mean over tokens: one stream, parameters bound, exact under permutation', async () => {
  const model = tokenNet(erfGelu, (b, y) =>
    b.op('ReduceMean', [y], { axes: [1], keepdims: 0 }, 'pool'),
  );
  const spaces = spacesOf(model);
  const stream = spaces.spaces.find((s) => s.producers.includes('fc2'))!;
  assert.equal(stream.kind, 'residual');
  assert.ok(stream.parameters.includes('cls') && stream.parameters.includes('pos'));
  // Measured on every token before the mean, channels on the last axis.
  assert.equal(stream.site?.axis, 2);
  await assertPermutationKeepsFunction(model, [1, 4, 4]);
});

test('tokens: a Slice of the class token (x[:, 0]) and opset 20 Gelu: exact under permutation', async () => {
  const model = tokenNet(
    (b, h) => b.op('Gelu', [h]),
    (b, y) => {
      const first = b.op('Slice', [
        y,
        axes(b, 'starts', [0n]),
        axes(b, 'ends', [1n]),
        axes(b, 'slice_axes', [1n]),
      ]);
      return b.op('Squeeze', [first, axes(b, 'squeeze_axes', [1n])]);
    },
    20,
  );
  const spaces = spacesOf(model);
  const stream = spaces.spaces.find((s) => s.producers.includes('fc2'))!;
  assert.equal(stream.site?.axis, 2);
  await assertPermutationKeepsFunction(model, [1, 4, 4]);
});
