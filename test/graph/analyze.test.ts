/** @file Graph analysis: constant shape chains fold, shapes are inferred, feature spaces come from the graph alone. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import type { Model } from '../../src/onnx/model.js';
import { fixtureModel, maxAbsDiff, probeInput, runModel, zooModel } from '../helpers.js';

function analyzed(model: Model) {
  const graph = analyzeGraph(model);
  if (!graph.ok) throw new Error(graph.message);
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) throw new Error(spaces.message);
  return { graph: graph.value, spaces: spaces.value };
}

test("PyTorch's x.view(x.size(0), -1) chain folds to one Reshape and the model still computes the same", async () => {
  const source = fixtureModel('vgg', 'a');
  assert.ok(source.graph.nodes.some((n) => n.opType === 'Shape'));
  const { graph, spaces } = analyzed(source);
  const ops = graph.model.graph.nodes.map((n) => n.opType);
  assert.equal(ops.includes('Shape') || ops.includes('Gather') || ops.includes('Constant'), false);
  const reshape = graph.model.graph.nodes.find((n) => n.opType === 'Reshape')!;
  assert.deepEqual(graph.states.get(reshape.outputs[0]!)?.shape, ['N', 3136]);
  assert.equal(graph.roles.get(reshape.name), 'flatten');
  // fc1 reads the 64 x 7 x 7 map: its columns are the 64-channel space repeated 49 times.
  const fc1Columns = spaces.bindings.find(
    (b) => b.initializer === 'fc1.weight' && b.role === 'columns',
  )!;
  assert.deepEqual(
    fc1Columns.segments.map((s) => [s.width, s.repeat]),
    [[64, 49]],
  );
  const input = probeInput();
  assert.ok(
    maxAbsDiff(
      (await runModel(source, input)).logits!,
      (await runModel(graph.model, input)).logits!,
    ) < 1e-6,
  );
});

test('shape inference gives every ResNet-20 stage its size', () => {
  const { graph } = analyzed(zooModel('resnet20'));
  const convShapes = graph.model.graph.nodes
    .filter((n) => n.opType === 'Conv')
    .map((n) => graph.states.get(n.outputs[0]!)!.shape);
  assert.equal(convShapes.length, 21);
  assert.deepEqual(convShapes[0], ['N', 16, 28, 28]);
  assert.deepEqual(convShapes[convShapes.length - 1], ['N', 64, 7, 7]);
});

test('ResNet-20: one residual space per stage, one plain space per block, fixed input and output', () => {
  const { spaces } = analyzed(zooModel('resnet20'));
  const kinds = spaces.spaces.map((s) => s.kind);
  assert.equal(kinds.filter((k) => k === 'residual').length, 3);
  assert.equal(kinds.filter((k) => k === 'plain').length, 9);
  assert.equal(kinds.filter((k) => k === 'fixed').length, 2);
  const stage1 = spaces.spaces.find((s) => s.kind === 'residual')!;
  assert.deepEqual(stage1.producers, [
    'conv1',
    'layer1.0.conv2',
    'layer1.1.conv2',
    'layer1.2.conv2',
  ]);
  assert.ok(stage1.parameters.includes('bn1.running_mean'));
  assert.ok(stage1.consumers.includes('layer2.0.shortcut.0'));
});

test('torchvision-style 1x1 projection shortcuts join the stream they write (resnet8 fixture)', () => {
  const { spaces } = analyzed(fixtureModel('resnet8', 'a'));
  const residual = spaces.spaces.filter((s) => s.kind === 'residual');
  assert.deepEqual(
    residual.map((s) => s.width),
    [16, 32, 64],
  );
  assert.ok(residual[1]!.producers.includes('/layer2/downsample/downsample.0/Conv'));
  // Measured on the map the global average pool reads (as the reference does), not on its means.
  assert.equal(residual[2]!.site?.value, '/layer3/Relu_1_output_0');
});

test('EXPECTED FAILURE - an unsupported op names the node and its position', () => {
  const model = zooModel('mlp');
  const nodes = [...model.graph.nodes];
  nodes.splice(3, 0, {
    name: 'weird',
    opType: 'TopK',
    domain: '',
    inputs: ['relu'],
    outputs: ['t'],
    attributes: {},
  });
  const result = analyzeGraph({ ...model, graph: { ...model.graph, nodes } });
  assert.ok(!result.ok);
  assert.equal(result.reason, 'unsupported-op');
  assert.match(
    result.message,
    /^Unsupported op 'TopK' at node 'weird' \(node \d+ of 8\); zipit supports \d+ ops \(listed in the README\)\.$/,
  );
});
