/** @file GraphBuilder: unique weight names, and rewriting an existing model with buildInto. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { createSession } from '../../src/runtime/session.js';

const scalar = (value: number) => float32Tensor([], Float32Array.of(value));

test('a weight name already taken gets a fresh one, and hasWeight says which are taken', () => {
  const b = new GraphBuilder('g');
  assert.equal(b.weight('w', scalar(1)), 'w');
  assert.equal(b.weight('w', scalar(2)), 'w_1');
  assert.ok(b.hasWeight('w') && b.hasWeight('w_1'));
  assert.ok(!b.hasWeight('w_2'));
});

test("buildInto keeps the model's header, metadata and inputs and takes the built graph", async () => {
  const source = new GraphBuilder('source');
  const x = source.input('x', ['N', 2]);
  source.op('Relu', [x], {}, 'y');
  source.output('y', ['N', 2]);
  const model = {
    ...source.build({ note: 'kept' }),
    irVersion: 7,
    producerName: 'someone else',
  };

  const b = new GraphBuilder('ignored');
  for (const node of model.graph.nodes) b.append(node);
  const two = b.weight('two', scalar(2));
  b.node('Mul', ['y', two], {}, { name: 'double', outputs: ['doubled'] });
  b.output('y', ['N', 2]);
  b.output('doubled', undefined, 1);
  const rewritten = b.buildInto(model);

  assert.equal(rewritten.irVersion, 7);
  assert.equal(rewritten.producerName, 'someone else');
  assert.deepEqual(rewritten.metadata, { note: 'kept' });
  assert.deepEqual(rewritten.opsetImports, model.opsetImports);
  assert.equal(rewritten.graph.name, 'source');
  assert.deepEqual(rewritten.graph.inputs, model.graph.inputs);
  assert.deepEqual(
    rewritten.graph.outputs.map((o) => o.name),
    ['y', 'doubled'],
  );
  assert.deepEqual([...rewritten.graph.initializers.keys()], ['two']);
  const session = await createSession(rewritten, { threads: 1 });
  assert.ok(session.ok, session.ok ? '' : session.message);
  const out = await session.value.run({ x: float32Tensor([1, 2], Float32Array.of(-1, 3)) });
  await session.value.release();
  assert.deepEqual([...out['doubled']!.data], [0, 6]);
});
