/**
 * @file Fuzzing the reader and the analysis: seeded byte flips and truncations of fixture
 * models must each end in a result or a Failure, never an exception. The outcome counts are
 * printed as a diagnostic (docs/ROBUSTNESS.md quotes them).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mulberry32, type Rng } from '../../src/data/random.js';
import { analyzeGraph, type AnalyzedGraph } from '../../src/graph/analyze.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import { SUPPORTED_OPS } from '../../src/graph/rules/index.js';
import { decodeModel, encodeModel, type Attribute, type Model } from '../../src/onnx/model.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { TORCH_DIR } from '../helpers.js';
import { TORCH_EXTRA_DIR } from '../exporters/helpers.js';

/** Fixture files and how many cases each gets (small files get more: a case costs its size). */
const TARGETS: [string, number][] = [
  [join(TORCH_EXTRA_DIR, 'bottleneck.onnx'), 900],
  [join(TORCH_EXTRA_DIR, 'concat.onnx'), 900],
  [join(TORCH_EXTRA_DIR, 'cnn-opset11.onnx'), 500],
  [join(TORCH_EXTRA_DIR, 'bn-preserve.onnx'), 500],
  [join(TORCH_DIR, 'resnet8', 'a.onnx'), 200],
];

type Mutation = 'flip' | 'truncate' | 'flip+truncate' | 'splice';

/** One seeded mutation of `bytes`: flip 1-8 bytes, cut the tail, both, or overwrite a short span. */
function mutate(bytes: Uint8Array, rng: Rng): { kind: Mutation; data: Uint8Array } {
  const kinds: Mutation[] = ['flip', 'truncate', 'flip+truncate', 'splice'];
  const kind = kinds[Math.floor(rng() * kinds.length)]!;
  let data = Uint8Array.from(bytes);
  const at = (): number => Math.floor(rng() * data.length);
  if (kind === 'flip' || kind === 'flip+truncate') {
    const flips = 1 + Math.floor(rng() * 8);
    // Most of a model file is weight bytes; aim half the flips at the structure (the first KB).
    for (let i = 0; i < flips; i++) {
      const position = rng() < 0.5 ? Math.floor(rng() * Math.min(1024, data.length)) : at();
      data[position] = data[position]! ^ (1 + Math.floor(rng() * 255));
    }
  }
  if (kind === 'truncate' || kind === 'flip+truncate') data = data.subarray(0, at());
  if (kind === 'splice') {
    const start = at();
    const length = 1 + Math.floor(rng() * 16);
    for (let i = start; i < Math.min(data.length, start + length); i++)
      data[i] = Math.floor(rng() * 256);
  }
  return { kind, data };
}

/** Runs the reader, the analysis and the structure check; returns the outcome's name. */
function outcome(data: Uint8Array, original: AnalyzedGraph): string {
  const model = decodeModel(data);
  if (!model.ok) return `decode: ${model.reason}`;
  const graph = analyzeGraph(model.value);
  if (!graph.ok) return `analyze: ${graph.reason}`;
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) return `spaces: ${spaces.reason}`;
  const structure = checkSameStructure([original, graph.value], ['original', 'fuzzed']);
  return structure.ok ? 'ok: same structure' : `structure: ${structure.reason}`;
}

test('fuzzing: flipped and truncated models always end in a result or a Failure', (t) => {
  const rng = mulberry32(20240607);
  const counts = new Map<string, number>();
  const crashes: string[] = [];
  let cases = 0;
  for (const [path, count] of TARGETS) {
    const bytes = readFileSync(path);
    const decoded = decodeModel(bytes);
    assert.ok(decoded.ok);
    const original = analyzeGraph(decoded.value);
    assert.ok(original.ok);
    for (let i = 0; i < count; i++) {
      const { kind, data } = mutate(bytes, rng);
      cases += 1;
      let name: string;
      try {
        name = outcome(data, original.value);
      } catch (error: unknown) {
        name = 'EXCEPTION';
        if (crashes.length < 5)
          crashes.push(
            `${path} case ${i} (${kind}): ${error instanceof Error ? error.stack : String(error)}`,
          );
      }
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  const summary = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
  t.diagnostic(`${cases} cases: ${summary.join(', ')}`);
  assert.deepEqual(crashes, [], crashes.join('\n\n'));
  assert.equal(cases, 3000);
});

/** One seeded edit of a decoded model's graph: an attribute, an op type, an input or a weight's dims. */
function mutateGraph(model: Model, rng: Rng): Model {
  const nodes = [...model.graph.nodes];
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
  const index = Math.floor(rng() * nodes.length);
  const node = nodes[index]!;
  const small = (): number => Math.floor(rng() * 12) - 3;
  const initializers = new Map(model.graph.initializers);
  switch (Math.floor(rng() * 5)) {
    case 0: {
      const attributes: Record<string, Attribute> = { ...node.attributes };
      const name = pick([...Object.keys(attributes), 'axis', 'group', 'transB', 'kernel_shape']);
      attributes[name] =
        rng() < 0.5
          ? { type: 'int', value: small() }
          : { type: 'ints', value: Array.from({ length: Math.floor(rng() * 5) }, small) };
      nodes[index] = { ...node, attributes };
      break;
    }
    case 1:
      nodes[index] = { ...node, opType: pick(SUPPORTED_OPS) };
      break;
    case 2:
      nodes[index] = {
        ...node,
        inputs: node.inputs.slice(0, Math.floor(rng() * node.inputs.length)),
      };
      break;
    case 3: {
      const name = pick([...initializers.keys()]);
      const tensor = initializers.get(name)!;
      const dims = Array.from({ length: Math.floor(rng() * 5) }, () => Math.floor(rng() * 6));
      // Data of the new size, so the edit reaches the analysis instead of failing on decode.
      const size = dims.reduce((a, b) => a * b, 1);
      const data =
        tensor.dtype === 'int64'
          ? BigInt64Array.from({ length: size }, () => BigInt(small()))
          : new Float32Array(size).fill(0.5);
      initializers.set(name, {
        dtype: tensor.dtype === 'int64' ? 'int64' : 'float32',
        dims,
        data,
      } as Tensor);
      break;
    }
    default:
      nodes[index] = { ...node, inputs: [...node.inputs].reverse() };
  }
  return { ...model, graph: { ...model.graph, nodes, initializers } };
}

test('fuzzing: edited graphs (attributes, op types, inputs, weight dims) end in a result or a Failure', (t) => {
  const rng = mulberry32(77);
  const counts = new Map<string, number>();
  const crashes: string[] = [];
  const sources = [
    join(TORCH_EXTRA_DIR, 'bottleneck.onnx'),
    join(TORCH_EXTRA_DIR, 'concat.onnx'),
    join(TORCH_EXTRA_DIR, 'cnn-opset11.onnx'),
    join(TORCH_EXTRA_DIR, 'layernorm.onnx'),
  ];
  let cases = 0;
  for (const path of sources) {
    const decoded = decodeModel(readFileSync(path));
    assert.ok(decoded.ok);
    const original = analyzeGraph(decoded.value);
    assert.ok(original.ok);
    for (let i = 0; i < 500; i++) {
      cases += 1;
      let name: string;
      try {
        name = outcome(encodeModel(mutateGraph(decoded.value, rng)), original.value);
      } catch (error: unknown) {
        name = 'EXCEPTION';
        if (crashes.length < 5)
          crashes.push(
            `${path} case ${i}: ${error instanceof Error ? error.stack : String(error)}`,
          );
      }
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  const summary = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
  t.diagnostic(`${cases} cases: ${summary.join(', ')}`);
  assert.deepEqual(crashes, [], crashes.join('\n\n'));
});
