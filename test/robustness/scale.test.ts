/**
 * @file Graph-length scaling of the analysis `zipit inspect` and `--stop-at` run (issue 15,
 * point 5): topological order and stop points must be linear in the number of nodes. No test
 * asserts a time; the 60 s limit on the 100k-node chain only catches a quadratic regression,
 * which takes minutes there (a 20k-node chain took 17 s before the fix).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { countMacs } from '../../src/graph/flops.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { identityChain } from '../../bench/hostile-models.js';
import { findStopPoints } from '../../src/merge/stop-points.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/model.js';
import { Random } from '../../src/tensor/random.js';

test(
  'a 100k-node Identity chain is analysed and its stop points found (linear time)',
  { timeout: 60_000 },
  () => {
    const length = 100_000;
    const graph = analyzeGraph(identityChain(length));
    assert.ok(graph.ok, graph.ok ? '' : graph.message);
    assert.equal(graph.value.model.graph.nodes.length, length + 3);
    const spaces = analyzeSpaces(graph.value);
    assert.ok(spaces.ok, spaces.ok ? '' : spaces.message);
    const points = findStopPoints(graph.value, spaces.value);
    // Every cut in the chain zips the same one layer, so only the last is kept.
    assert.equal(points.length, 1);
    assert.equal(points[0]!.id, `identity_${length - 1}`);
    assert.equal(points[0]!.trunkMacs, 64);
    assert.equal(points[0]!.headMacs, 64);
    assert.equal(countMacs(graph.value), 128);
  },
);

/** The former sort, as a reference: repeatedly take the first pending node whose inputs exist. */
function scanOrder(model: Model): string[] {
  const available = new Set(['', ...model.graph.inputs.map((i) => i.name)]);
  const pending = [...model.graph.nodes];
  const order: string[] = [];
  while (pending.length > 0) {
    const index = pending.findIndex((n) => n.inputs.every((i) => available.has(i)));
    const [node] = pending.splice(index, 1);
    order.push(node!.name);
    for (const o of node!.outputs) available.add(o);
  }
  return order;
}

test('the topological order keeps the former order among ready nodes (a shuffled random DAG)', () => {
  // 300 Relu/Add nodes, each reading one or two earlier values, written in a shuffled order.
  const random = new Random(7);
  const count = 300;
  const nodes = Array.from({ length: count }, (_, i) => {
    const pick = (): string => (i === 0 ? 'x' : `v${Math.floor(random.uniform() * i)}`);
    const two = i > 1 && random.uniform() < 0.5;
    return { name: `n${i}`, inputs: two ? [pick(), pick()] : [pick()], output: `v${i}` };
  });
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [nodes[i], nodes[j]] = [nodes[j]!, nodes[i]!];
  }
  const b = new GraphBuilder('dag');
  b.input('x', ['N', 4]);
  for (const n of nodes) {
    const op = n.inputs.length === 2 ? 'Add' : 'Relu';
    b.node(op, n.inputs, {}, { name: n.name, outputs: [n.output] });
  }
  for (let i = 0; i < count; i++) b.output(`v${i}`, ['N', 4]);
  const model = b.build();
  const graph = analyzeGraph(model);
  assert.ok(graph.ok, graph.ok ? '' : graph.message);
  assert.deepEqual(
    graph.value.model.graph.nodes.map((n) => n.name),
    scanOrder(model),
  );
});

test('EXPECTED FAILURE - a cycle names the first node that can never run and the value it waits for', () => {
  const b = new GraphBuilder('cycle');
  const x = b.input('x', ['N', 4]);
  b.node('Relu', [x], {}, { name: 'ok', outputs: ['v0'] });
  b.node('Add', ['v0', 'v2'], {}, { name: 'p', outputs: ['v1'] });
  b.node('Relu', ['v1'], {}, { name: 'q', outputs: ['v2'] });
  b.output('v2', ['N', 4]);
  const graph = analyzeGraph(b.build());
  assert.ok(!graph.ok);
  assert.equal(
    graph.message,
    "Node 'p' (Add) reads 'v2', which no node, input or initializer provides (or the graph has a cycle).",
  );
});
