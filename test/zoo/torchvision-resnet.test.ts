/**
 * @file torchvision-layout ResNets in the zoo: BasicBlock (ResNet-18) and Bottleneck
 * (ResNet-50) stages with 1x1 conv+BN downsample shortcuts; their spaces, and the exactness
 * of merging a model with its own channel permutation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import type { Model } from '../../src/onnx/model.js';
import { buildZooModel, type ZooArchitecture } from '../../src/zoo/architectures.js';
import { fashionMergeData, mergesBackToItself } from '../exporters/helpers.js';

function resnet(arch: ZooArchitecture, depth?: readonly number[], width = 1): Model {
  const model = buildZooModel({
    arch,
    width,
    seed: 5,
    inputShape: [1, 28, 28],
    classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    preprocessing: { mean: [0.286], std: [0.353] },
    ...(depth ? { depth } : {}),
  });
  if (!model.ok) throw new Error(model.message);
  return model.value;
}

function analysed(model: Model) {
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  const spaces = analyzeSpaces(graph.value);
  assert.ok(spaces.ok, spaces.ok ? '' : spaces.message);
  return { graph: graph.value, spaces: spaces.value };
}

test("resnet18 and resnet50 have torchvision's conv counts at full depth, and shapes for 28x28 inputs", () => {
  for (const [arch, convs, last] of [
    ['resnet18', 20, 128],
    ['resnet50', 53, 512],
  ] as const) {
    const { graph } = analysed(resnet(arch));
    const nodes = graph.model.graph.nodes.filter((n) => n.opType === 'Conv');
    assert.equal(nodes.length, convs, `${arch}: conv layers`);
    assert.equal(
      nodes.filter((n) => n.name.includes('downsample')).length,
      arch === 'resnet18' ? 3 : 4,
    );
    // 28 -> 28 -> 14 -> 7 -> 4 with a 3x3 stem and no max-pool.
    assert.deepEqual(graph.states.get(nodes.at(-1)!.outputs[0]!)?.shape, ['N', last, 4, 4]);
  }
});

test("resnet18 spaces: the stem joins stage 1's stream; each later stream starts at a 1x1 downsample", () => {
  const { spaces } = analysed(resnet('resnet18', [2, 2, 2, 2]));
  const residual = spaces.spaces.filter((s) => s.kind === 'residual');
  assert.deepEqual(
    residual.map((s) => s.width),
    [16, 32, 64, 128],
  );
  assert.ok(residual[0]!.producers.includes('conv1'));
  for (const [stage, stream] of residual.slice(1).entries())
    assert.ok(stream.producers.includes(`layer${stage + 2}.0.downsample.0`));
  assert.equal(spaces.spaces.filter((s) => s.kind === 'plain').length, 8); // one per BasicBlock
});

test('resnet50 spaces: two plain spaces per Bottleneck, streams 4x wider, a plain stem', () => {
  const { spaces } = analysed(resnet('resnet50', [1, 2, 1, 1]));
  const residual = spaces.spaces.filter((s) => s.kind === 'residual');
  assert.deepEqual(
    residual.map((s) => s.width),
    [64, 128, 256, 512],
  );
  const plain = spaces.spaces.filter((s) => s.kind === 'plain');
  // The stem (16) plus conv1/conv2 of each of the 5 blocks.
  assert.equal(plain.length, 1 + 2 * 5);
  assert.equal(plain[0]!.width, 16);
});

for (const arch of ['resnet18', 'resnet50'] as const) {
  test(`a function-preserving permutation of ${arch} (one block per stage) merges back to itself`, async () => {
    const diff = await mergesBackToItself(
      resnet(arch, [1, 1, 1, 1]),
      fashionMergeData(),
      { mean: 0.286, std: 0.353 },
      13,
    );
    assert.ok(diff < 1e-4, `merged (A, permuted A) differs from A by ${diff}`);
  });
}

test('EXPECTED FAILURE - a ResNet depth with an empty stage', () => {
  const model = buildZooModel({
    arch: 'resnet18',
    width: 1,
    seed: 1,
    inputShape: [1, 28, 28],
    classLabels: [0, 1],
    preprocessing: { mean: [0.5], std: [0.5] },
    depth: [2, 0],
  });
  assert.ok(!model.ok);
  assert.equal(model.reason, 'bad-argument');
  assert.equal(
    model.message,
    'Expected a ResNet depth of 1 to 4 stages of at least 1 block each, got [2, 0]',
  );
});
