/**
 * @file Careless options and mismatched models (issue 15, points 2 and 9): `--threads` bounded
 * by the machine, models with different outputs, ir_version 0, unsupported ops after a stop
 * point, stored preprocessing of a merge, and messages that say what is wrong.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseThreadsOption } from '../../src/cli/common.js';
import { batches, type Dataset } from '../../src/data/dataset.js';
import { evaluateModels } from '../../src/eval/evaluate.js';
import { compareMethods } from '../../src/experiment/compare.js';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { SUPPORTED_OPS } from '../../src/graph/rules/index.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { validIrVersion, type Model } from '../../src/onnx/model.js';
import { resolvePreprocessing } from '../../src/onnx/preprocessing.js';
import { syntheticData } from '../exporters/helpers.js';
import { zooModel, runZipit as zipit } from '../helpers.js';

const MLP_A = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx');
const MLP_B = join('test', 'fixtures', 'torch-fmnist', 'mlp', 'b.onnx');

test('EXPECTED FAILURE - --threads above the cores is refused, naming the maximum', () => {
  const parse = parseThreadsOption(4);
  assert.equal(parse('4'), 4);
  assert.throws(() => parse('1000'), {
    message:
      "Expected --threads to be an integer from 1 to 4 (the cores this machine has), got '1000'.",
  });
  assert.throws(() => parse('0'), /from 1 to 4/);
});

test('EXPECTED FAILURE - zipit merge and train refuse --threads above the cores before any work', async () => {
  const tooMany = String(availableParallelism() + 1);
  const max = availableParallelism();
  for (const args of [
    ['merge', MLP_A, MLP_B, '--out', join('nonexistent', 'x.onnx'), '--threads', tooMany],
    ['train', '--arch', 'mlp', '--out', join('nonexistent', 'x.onnx'), '--threads', tooMany],
  ]) {
    const { code, stderr } = await zipit(args);
    assert.equal(code, 2, stderr);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `Expected --threads to be an integer from 1 to ${max} \\(the cores this machine has\\), got '${tooMany}'`,
      ),
    );
  }
});

/** The first Relu's output of a zoo MLP, added as a second graph output. */
function withExtraOutput(model: Model): Model {
  const relu = model.graph.nodes.find((n) => n.opType === 'Relu')!.outputs[0]!;
  return {
    ...model,
    graph: { ...model.graph, outputs: [...model.graph.outputs, { name: relu, elemType: 1 }] },
  };
}

test('EXPECTED FAILURE - models with different graph outputs are refused in either order, naming the outputs', () => {
  const plain = analyzeGraph(zooModel('mlp', 1));
  const extra = analyzeGraph(withExtraOutput(zooModel('mlp', 2)));
  assert.ok(plain.ok && extra.ok);
  const relu = extra.value.model.graph.outputs[1]!.name;
  const logits = plain.value.model.graph.outputs[0]!.name;
  const ab = checkSameStructure([plain.value, extra.value], ['a.onnx', 'b.onnx']);
  assert.ok(!ab.ok);
  assert.equal(ab.reason, 'structure-mismatch');
  assert.equal(
    ab.message,
    `b.onnx differs from a.onnx: graph outputs (${logits}, ${relu}) vs (${logits}); the models must compute the same outputs.`,
  );
  const ba = checkSameStructure([extra.value, plain.value], ['b.onnx', 'a.onnx']);
  assert.ok(!ba.ok);
  assert.equal(
    ba.message,
    `a.onnx differs from b.onnx: graph outputs (${logits}) vs (${logits}, ${relu}); the models must compute the same outputs.`,
  );
  // Same outputs under other names are fine.
  const renamed = analyzeGraph(withExtraOutput(zooModel('mlp', 3)));
  assert.ok(renamed.ok);
  assert.ok(checkSameStructure([extra.value, renamed.value], ['b.onnx', 'c.onnx']).ok);
});

test('an unsupported op is reported without advice that cannot work (--stop-at does not skip it)', () => {
  const b = new GraphBuilder('custom');
  const x = b.input('x', ['N', 4]);
  const h = b.op('Relu', [x]);
  b.node('FancyOp', [h], {}, { name: 'fancy', outputs: ['y'] });
  b.output('y', ['N', 4]);
  const graph = analyzeGraph(b.build());
  assert.ok(!graph.ok);
  assert.equal(graph.reason, 'unsupported-op');
  assert.equal(
    graph.message,
    `Unsupported op 'FancyOp' at node 'fancy' (node 2 of 2); zipit supports ${SUPPORTED_OPS.length} ops (listed in the README).`,
  );
});

test('ir_version 0 is not copied into the output: a merge writes the version its opset needs', async () => {
  assert.equal(validIrVersion({ ...zooModel('mlp'), irVersion: 0 }), 8); // opset 17
  assert.equal(validIrVersion({ ...zooModel('mlp'), irVersion: 10 }), 10);
  assert.equal(
    validIrVersion({
      ...zooModel('mlp'),
      irVersion: 0,
      opsetImports: [{ domain: '', version: 11 }],
    }),
    6,
  );
  // A PyTorch-like pair: no stored preprocessing, ir_version 0.
  const bare = (seed: number): Model => ({ ...zooModel('mlp', seed), irVersion: 0, metadata: {} });
  const merged = await mergeModels(
    [bare(1), bare(2)],
    ['a.onnx', 'b.onnx'],
    syntheticData([1, 28, 28], 40),
    { mean: 0.286, std: 0.353 },
    { method: 'wavg', match: { alpha: 0.3, beta: 0 }, batchSize: 20, threads: 1 },
  );
  assert.ok(merged.ok, merged.ok ? '' : merged.message);
  assert.equal(merged.value.model.irVersion, 8);
  // It also stores the preprocessing it was merged with, so eval needs no --mean/--std.
  assert.equal(merged.value.model.metadata['zipit.mean'], '0.286');
  assert.equal(merged.value.model.metadata['zipit.std'], '0.353');
  assert.equal(merged.value.model.metadata['zipit.input_shape'], '1,28,28');
  const resolved = resolvePreprocessing(merged.value.model, {}, 'merged.onnx');
  assert.ok(resolved.ok, resolved.ok ? '' : resolved.message);
  assert.deepEqual(resolved.value, { mean: [0.286], std: [0.353] });
});

test('EXPECTED FAILURE - one normalisation value too many on a 1-channel input says "Expected 1 value"', () => {
  const data = syntheticData([1, 28, 28], 4);
  const pass = batches(data, { batchSize: 4, normalization: { mean: [0.1, 0.2], std: 0.3 } });
  assert.ok(!pass.ok);
  assert.equal(pass.message, 'Expected 1 normalisation mean value, got 2');
  const rgb = batches(syntheticData([3, 8, 8], 4), {
    batchSize: 4,
    normalization: { mean: [0.1, 0.2], std: 0.3 },
  });
  assert.ok(!rgb.ok);
  assert.equal(rgb.message, 'Expected 1 or 3 normalisation mean values (one per channel), got 2');
});

test('EXPECTED FAILURE - a data label of 200 is reported as out of range for a 10-class model', async () => {
  const base = syntheticData([1, 28, 28], 20);
  const labels = Uint8Array.from(base.labels);
  labels[3] = 200;
  // What an IDX file with a label of 200 gives: 201 classes, default tasks 0..200.
  const data: Dataset = { ...base, labels, numClasses: 201 };
  const tasks = [Array.from({ length: 201 }, (_, i) => i)];
  const model = { model: zooModel('mlp'), label: 'a.onnx', mean: [0.286], std: [0.353] };
  const result = await evaluateModels([model], data, tasks, { threads: 1 });
  assert.ok(!result.ok);
  assert.equal(
    result.message,
    'The data has label 200, out of range for a model with 10 classes (0-9); check --data.',
  );
  // A class inside the model's range that no logit scores is still a --tasks matter.
  const even = await evaluateModels([model], base, [[0, 2, 4, 6, 8, 11]], { threads: 1 });
  assert.ok(!even.ok);
  assert.equal(even.message, 'No model output scores class 11; check --tasks.');
});

test('EXPECTED FAILURE - compare rejects a bad stop point before any evaluation', async () => {
  const phases: string[] = [];
  const data = syntheticData([1, 28, 28], 20);
  const result = await compareMethods({
    models: [zooModel('mlp', 1), zooModel('mlp', 2)],
    labels: ['a.onnx', 'b.onnx'],
    tasks: [
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
    ],
    mergeData: data,
    testData: data,
    normalization: { mean: [0.286], std: [0.353] },
    threads: 1,
    stopPoints: ['bogus'],
    onProgress: (event) => phases.push(event.phase),
  });
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-argument');
  assert.match(
    result.message,
    /^Unknown stop point 'bogus'; expected a node name, a space id or a fraction in \(0, 1\); valid: /,
  );
  assert.deepEqual(phases, []);
});
