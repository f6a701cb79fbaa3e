/** @file The structure check compares float attributes as an ONNX file stores them (float32). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import { decodeModel, encodeModel, type Model } from '../../src/onnx/model.js';
import { zooModel } from '../helpers.js';

function check(models: Model[]) {
  const graphs = models.map((m) => {
    const graph = analyzeGraph(m);
    assert.ok(graph.ok, !graph.ok ? graph.message : '');
    return graph.value;
  });
  return checkSameStructure(graphs, ['a.onnx', 'b.onnx']);
}

function withEpsilon(model: Model, node: string, epsilon: number): Model {
  return {
    ...model,
    graph: {
      ...model.graph,
      nodes: model.graph.nodes.map((n) =>
        n.name === node
          ? { ...n, attributes: { ...n.attributes, epsilon: { type: 'float', value: epsilon } } }
          : n,
      ),
    },
  };
}

test('a model built in memory and the same model read back from its bytes have one structure', () => {
  // BN's epsilon is 1e-5 in memory and 9.99999975e-6 once stored as float32: the experiment
  // merges a model it just trained with one a previous run wrote.
  const built = zooModel('resnet20', 1);
  const stored = decodeModel(encodeModel(zooModel('resnet20', 2)));
  assert.ok(stored.ok);
  const bn = stored.value.graph.nodes.find((n) => n.opType === 'BatchNormalization')!;
  const epsilon = bn.attributes['epsilon'];
  assert.ok(epsilon?.type === 'float' && epsilon.value !== 1e-5, 'the round trip rounds');
  assert.ok(check([built, stored.value]).ok);
  assert.ok(check([stored.value, built]).ok);
});

test('EXPECTED FAILURE - a float attribute that differs beyond float32 rounding', () => {
  const a = zooModel('resnet20', 1);
  const bn = a.graph.nodes.find((n) => n.opType === 'BatchNormalization')!;
  const result = check([a, withEpsilon(zooModel('resnet20', 2), bn.name, 1e-3)]);
  assert.ok(!result.ok);
  assert.equal(result.reason, 'structure-mismatch');
  assert.match(result.message, /attributes differ/);
});
