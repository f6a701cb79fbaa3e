/**
 * @file PyTorch exports beyond the training fixtures (other opsets, constant folding off, a
 * channel Concat, LayerNorm, BatchNorm kept as a node, bottleneck blocks): each decodes, is
 * analysed into spaces, computes PyTorch's logits, and merges with its own permutation back
 * to itself. The files come from scripts/make-torch-fixtures.py.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { maxAbsDiff } from '../helpers.js';
import {
  extraFixtures,
  extraModel,
  fashionMergeData,
  mergesBackToItself,
  probeFor,
  runFirstOutput,
  syntheticData,
} from './helpers.js';

/** What the analysis must find in each file: ops before analysis, and the spaces after. */
const EXPECTED: Record<string, { ops: string[]; spaces: string }> = {
  'cnn-opset11': {
    ops: ['Constant', 'Shape', 'Gather', 'Unsqueeze', 'Concat', 'Reshape'],
    spaces: 'fixed:1 plain:8 plain:12 plain:16 fixed:10',
  },
  'cnn-opset17': {
    ops: ['Constant', 'Shape', 'Reshape'],
    spaces: 'fixed:1 plain:8 plain:12 plain:16 fixed:10',
  },
  concat: {
    ops: ['Concat', 'Flatten'],
    spaces: 'fixed:3 plain:8 plain:6 plain:4 plain:12 fixed:10',
  },
  layernorm: { ops: ['LayerNormalization'], spaces: 'fixed:1 plain:32 plain:24 fixed:10' },
  'bn-preserve': {
    ops: ['BatchNormalization'],
    spaces: 'fixed:1 plain:8 plain:12 plain:16 fixed:10',
  },
  bottleneck: {
    ops: ['Add'],
    spaces: 'fixed:1 plain:8 plain:4 plain:4 residual:16 plain:6 plain:6 residual:24 fixed:10',
  },
};

for (const fixture of extraFixtures()) {
  test(`torch export '${fixture.name}' (${fixture.note}): decodes, analyses, matches PyTorch, merges back to itself`, async () => {
    const model = extraModel(fixture.file);
    const expected = EXPECTED[fixture.name];
    assert.ok(expected, `no expectations for ${fixture.name}`);
    const ops = new Set(model.graph.nodes.map((n) => n.opType));
    for (const op of expected.ops) assert.ok(ops.has(op), `${fixture.name} should contain ${op}`);

    const graph = analyzeGraph(model);
    assert.ok(graph.ok, graph.ok ? '' : graph.message);
    assert.equal(
      graph.value.model.graph.nodes.some((n) => ['Constant', 'Shape', 'Gather'].includes(n.opType)),
      false,
      'constants are lifted and shape chains folded',
    );
    const spaces = analyzeSpaces(graph.value);
    assert.ok(spaces.ok, spaces.ok ? '' : spaces.message);
    assert.equal(spaces.value.spaces.map((s) => `${s.kind}:${s.width}`).join(' '), expected.spaces);

    // PyTorch's logits, from the file as exported and from the normalised graph.
    const input = probeFor(fixture.input_shape);
    const reference = fixture.logits.flat();
    for (const candidate of [model, graph.value.model]) {
      const logits = await runFirstOutput(candidate, input, fixture.input_shape, 2);
      const diff = maxAbsDiff(logits, reference);
      assert.ok(diff < 1e-4, `logits differ from PyTorch's by ${diff}`);
    }

    const [c, h, w] = fixture.input_shape;
    const fashion = c === 1 && h === 28 && w === 28;
    const data = fashion ? fashionMergeData() : syntheticData(fixture.input_shape, 64);
    const normalization = fashion ? { mean: 0.286, std: 0.353 } : { mean: 0.5, std: 0.25 };
    const diff = await mergesBackToItself(model, data, normalization);
    assert.ok(diff < 1e-4, `merged (A, permuted A) differs from A by ${diff}`);
  });
}
