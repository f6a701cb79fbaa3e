/**
 * @file Every bad input the merge path can meet, at library level (a Failure with its message)
 * and, for a few, through the real CLI (exit code, one `zipit: error:` line, no stack trace,
 * no output file). docs/ROBUSTNESS.md tabulates these tests.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkImageShape } from '../../src/data/dataset.js';
import { analyzeGraph } from '../../src/graph/analyze.js';
import { parseMatchOptions } from '../../src/match/index.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { readModelFile, writeModelFile } from '../../src/onnx/files.js';
import { checkFiniteWeights, decodeModel, encodeModel, type Model } from '../../src/onnx/model.js';
import { modelProtoType } from '../../src/onnx/schema.js';
import type { Tensor } from '../../src/onnx/tensor.js';
import { buildZooModel } from '../../src/zoo/architectures.js';
import { temporaryDirectory, TEST_DIR, TORCH_DIR, zooModel } from '../helpers.js';
import { imagesAsInput, runFirstOutput, syntheticData } from '../exporters/helpers.js';

const NORMALIZATION = { mean: 0.5, std: 0.25 };
const OPTIONS = {
  method: 'permute',
  match: { alpha: 0.3, beta: 0 },
  repair: false,
  batchSize: 20,
  threads: 1,
} as const;
const DATA = syntheticData([1, 28, 28], 40);

/** A small MLP on 1x28x28 (zoo 'mlp' is 784-256-256-10; this one is the same at width 1). */
const mlp = (seed = 1): Model => zooModel('mlp', seed);

function withWeight(model: Model, name: string, edit: (data: Float32Array) => void): Model {
  const initializers = new Map(model.graph.initializers);
  const tensor = initializers.get(name) as Tensor<'float32'>;
  const data = Float32Array.from(tensor.data);
  edit(data);
  initializers.set(name, { ...tensor, data });
  return { ...model, graph: { ...model.graph, initializers } };
}

/* ---------- files ---------- */

test('EXPECTED FAILURE - not an ONNX file (JSON text)', () => {
  const result = decodeModel(new TextEncoder().encode('{"model": "resnet"}\n'));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'not-onnx');
  assert.equal(
    result.message,
    `The file is not an ONNX model (it is text starting with '{"model": "resnet"}').`,
  );
});

test('EXPECTED FAILURE - not an ONNX file (binary, e.g. a PNG)', () => {
  const result = decodeModel(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'not-onnx');
  assert.equal(
    result.message,
    'The file is not an ONNX model (it starts with bytes 89 50 4e 47, not a protobuf ModelProto).',
  );
});

test('EXPECTED FAILURE - truncated file', () => {
  const bytes = readFileSync(join(TORCH_DIR, 'resnet8', 'a.onnx'));
  const result = decodeModel(bytes.subarray(0, 1000));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'truncated');
  assert.equal(
    result.message,
    'The file ends early (index out of range); it is truncated or damaged.',
  );
});

test('EXPECTED FAILURE - external-data tensors (weights in a side file)', () => {
  const type = modelProtoType();
  const proto = type.toObject(type.decode(encodeModel(mlp())), { longs: Number }) as {
    graph: { initializer: Record<string, unknown>[] };
  };
  const first = proto.graph.initializer[0]!;
  delete first.raw_data;
  first.data_location = 1;
  first.external_data = [
    { key: 'location', value: 'weights.bin' },
    { key: 'offset', value: '0' },
  ];
  const result = decodeModel(type.encode(type.fromObject(proto)).finish());
  assert.ok(!result.ok);
  assert.equal(result.reason, 'external-data');
  assert.equal(
    result.message,
    `Tensor '${String(first.name)}' stores its data in an external file, which zipit does not read; ` +
      're-save the model as one file (onnx.save_model(m, path, save_as_external_data=False)).',
  );
});

/* ---------- models that do not fit together ---------- */

test('EXPECTED FAILURE - models of different architectures (says where they first differ)', () => {
  const structure = (models: Model[]) => {
    const graphs = models.map((m) => {
      const graph = analyzeGraph(m);
      assert.ok(graph.ok);
      return graph.value;
    });
    const result = checkSameStructure(graphs, ['a.onnx', 'b.onnx']);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'structure-mismatch');
    return result.message;
  };
  assert.equal(
    structure([mlp(), zooModel('vgg')]),
    "b.onnx differs from a.onnx at node 1 ('conv1' vs 'flatten'): op Conv vs Flatten.",
  );
  assert.equal(
    structure([mlp(), zooModel('mlp', 1, 2)]),
    "b.onnx differs from a.onnx at node 2 ('fc1' vs 'fc1'): weight fc1.weight has shape [512, 784] vs [256, 784].",
  );
});

test('EXPECTED FAILURE - models with different input shapes', async () => {
  const spec = {
    arch: 'vgg',
    width: 1,
    seed: 1,
    classLabels: [0, 1, 2],
    preprocessing: { mean: [0.5], std: [0.25] },
  } as const;
  const small = buildZooModel({ ...spec, inputShape: [1, 28, 28] });
  const large = buildZooModel({ ...spec, inputShape: [1, 32, 32] });
  assert.ok(small.ok && large.ok);
  const result = await mergeModels(
    [small.value, large.value],
    ['a.onnx', 'b.onnx'],
    DATA,
    NORMALIZATION,
    OPTIONS,
  );
  assert.ok(!result.ok);
  assert.equal(result.reason, 'structure-mismatch');
  assert.equal(
    result.message,
    'b.onnx differs from a.onnx: input shape [N, 1, 32, 32] vs [N, 1, 28, 28]; the models must take the same input.',
  );
});

test('EXPECTED FAILURE - K = 1 (nothing to merge)', async () => {
  const result = await mergeModels([mlp()], ['a.onnx'], DATA, NORMALIZATION, OPTIONS);
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-argument');
  assert.equal(result.message, 'Expected at least 2 models to merge, got 1.');
});

/* ---------- data ---------- */

test('EXPECTED FAILURE - dataset images of the wrong size or channel count', async () => {
  // The check the CLI and pipeline should run before any inference (see docs/ROBUSTNESS.md):
  const wrongChannels = checkImageShape(
    { channels: 3, height: 32, width: 32 },
    { channels: 1, height: 28, width: 28 },
    'a.onnx',
  );
  assert.ok(!wrongChannels.ok);
  assert.equal(
    wrongChannels.message,
    "Expected images of 1x28x28 for a.onnx, got 3x32x32; use a dataset of the model's input shape (fashion-mnist is 1x28x28, cifar10 is 3x32x32)",
  );
  // mergeModels runs that check before any inference.
  for (const shape of [
    [3, 28, 28],
    [1, 20, 20],
  ] as const) {
    const result = await mergeModels(
      [mlp(), mlp(2)],
      ['a.onnx', 'b.onnx'],
      syntheticData(shape, 20),
      NORMALIZATION,
      OPTIONS,
    );
    assert.ok(!result.ok);
    assert.equal(result.reason, 'bad-dataset');
    assert.match(
      result.message,
      new RegExp(`^Expected images of 1x28x28 for a\\.onnx, got ${shape.join('x')};`),
    );
  }
});

/* ---------- numbers ---------- */

test('EXPECTED FAILURE - NaN or Inf weights are refused before any work, naming the weight', async () => {
  const nan = withWeight(mlp(), 'fc1.weight', (d) => {
    d[0] = Number.NaN;
    d[3 * 784 + 5] = Number.NaN;
  });
  const merged = await mergeModels(
    [nan, mlp()],
    ['nan.onnx', 'b.onnx'],
    DATA,
    NORMALIZATION,
    OPTIONS,
  );
  assert.ok(!merged.ok);
  assert.equal(merged.reason, 'bad-statistics');
  assert.equal(
    merged.message,
    "nan.onnx: Weight 'fc1.weight' has 2 non-finite values (NaN at index 0); zipit cannot merge a model with NaN or infinite weights.",
  );
  const inf = withWeight(mlp(), 'fc1.weight', (d) => {
    d[0] = Number.POSITIVE_INFINITY;
  });
  const refused = await mergeModels(
    [inf, mlp()],
    ['inf.onnx', 'b.onnx'],
    DATA,
    NORMALIZATION,
    OPTIONS,
  );
  assert.ok(!refused.ok);
  assert.match(
    refused.message,
    /^inf\.onnx: Weight 'fc1\.weight' has 1 non-finite value \(Infinity at index 0\)/,
  );
  assert.ok(checkFiniteWeights(mlp()).ok);
});

test('EXPECTED FAILURE - Inf activations (finite weights that overflow float32) give a clear Failure', async () => {
  const huge = withWeight(
    withWeight(mlp(), 'fc1.weight', (d) => d.fill(1e20)),
    'fc2.weight',
    (d) => d.fill(1e20),
  );
  const result = await mergeModels(
    [huge, mlp()],
    ['huge.onnx', 'b.onnx'],
    DATA,
    NORMALIZATION,
    OPTIONS,
  );
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-statistics');
  assert.match(
    result.message,
    /^Space \d+ \(.*\): Expected finite activations, got infinite values \(or float32 overflow\)/,
  );
});

test('dead channels (zero variance): correlations stay finite and every method completes', async () => {
  // 40 of fc1's 256 units never fire: their rows are zero and their bias is 0.
  const dead = withWeight(mlp(), 'fc1.weight', (d) => d.fill(0, 0, 40 * 784));
  const permuted = permuteChannels(dead, 3);
  assert.ok(permuted.ok);
  for (const method of ['zipit', 'permute', 'wavg'] as const) {
    const merged = await mergeModels(
      [dead, permuted.value.model],
      ['a', 'b'],
      DATA,
      NORMALIZATION,
      {
        ...OPTIONS,
        method,
        match: { alpha: 0.3, beta: 0.125 },
      },
    );
    assert.ok(merged.ok, merged.ok ? '' : merged.message);
    for (const correlation of merged.value.correlations.values())
      assert.equal(correlation.every(Number.isFinite), true, `${method}: correlation has NaN`);
    const output = await runFirstOutput(merged.value.model, imagesAsInput(DATA, 2), [1, 28, 28], 2);
    assert.ok(output.every(Number.isFinite), `${method}: merged outputs are finite`);
  }
});

/* ---------- options ---------- */

test('EXPECTED FAILURE - alpha or beta out of range', async () => {
  const alpha = parseMatchOptions({ alpha: 1.5 });
  assert.ok(!alpha.ok);
  assert.equal(alpha.message, 'Expected --alpha to be in [0, 1], got 1.5');
  const beta = parseMatchOptions({ beta: '-0.1' });
  assert.ok(!beta.ok);
  assert.equal(beta.message, 'Expected --beta to be in [0, 1], got -0.1');
  // The library rejects them too, though only after the statistics pass (see ROBUSTNESS.md).
  const result = await mergeModels([mlp(), mlp(2)], ['a', 'b'], DATA, NORMALIZATION, {
    ...OPTIONS,
    method: 'zipit',
    match: { alpha: 2, beta: 0 },
  });
  assert.ok(!result.ok);
  assert.equal(result.message, 'Expected --alpha to be in [0, 1], got 2');
});

test('EXPECTED FAILURE - unknown method', () => {
  const result = parseMatchOptions({ method: 'average' });
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-argument');
  assert.equal(
    result.message,
    "Expected --method to be 'zipit', 'permute', 'wavg', 'weights' or 'cca', got 'average'",
  );
});

test('EXPECTED FAILURE - unknown method passed to mergeModels from JavaScript', async () => {
  const result = await mergeModels([mlp(), mlp(2)], ['a', 'b'], DATA, NORMALIZATION, {
    ...OPTIONS,
    method: 'average' as 'zipit',
  });
  assert.ok(!result.ok);
  assert.equal(result.reason, 'bad-argument');
  assert.equal(
    result.message,
    "Expected --method to be 'zipit', 'permute', 'wavg', 'weights' or 'cca', got 'average'",
  );
});

/* ---------- output ---------- */

test('EXPECTED FAILURE - output path unwritable or the same as an input', () => {
  const dir = temporaryDirectory('zipit-bad-');
  const input = join(dir, 'a.onnx');
  writeFileSync(input, encodeModel(mlp()));
  const same = writeModelFile(join(dir, '.', 'a.onnx'), mlp(2), [input]);
  assert.ok(!same.ok);
  assert.equal(same.reason, 'unwritable-output');
  assert.equal(
    same.message,
    `Output path ${join(dir, 'a.onnx')} is one of the inputs; choose another --out.`,
  );
  const missing = writeModelFile(join(dir, 'no-such-folder', 'm.onnx'), mlp());
  assert.ok(!missing.ok);
  assert.equal(
    missing.message,
    `Cannot write ${join(dir, 'no-such-folder', 'm.onnx')} (ENOENT); check that its folder exists and is writable.`,
  );
  const folder = writeModelFile(dir, mlp());
  assert.ok(!folder.ok);
  assert.equal(folder.message, `Output path ${dir} is a directory; give a file name.`);
  assert.deepEqual(readdirSync(dir), ['a.onnx']);
  const reread = readModelFile(input);
  assert.ok(reread.ok && analyzeGraph(reread.value).ok, 'the input is untouched');
});

/* ---------- the CLI ---------- */

const MAIN = join(TEST_DIR, '..', 'src', 'cli', 'main.ts');

function zipit(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: join(TEST_DIR, '..'),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('EXPECTED FAILURE - the CLI answers bad merge inputs with one line, a non-zero exit and no output', async () => {
  const dir = temporaryDirectory('zipit-cli-');
  const a = join(dir, 'a.onnx');
  const b = join(dir, 'b.onnx');
  writeFileSync(a, encodeModel(mlp()));
  writeFileSync(b, encodeModel(mlp(2)));
  const text = join(dir, 'notes.onnx');
  writeFileSync(text, 'not a model\n');
  const cut = join(dir, 'cut.onnx');
  writeFileSync(cut, readFileSync(a).subarray(0, 5000));
  const vgg = join(dir, 'vgg.onnx');
  writeFileSync(vgg, encodeModel(zooModel('vgg')));
  const out = join(dir, 'merged.onnx');
  const quick = ['--samples', '20', '--batch', '20', '--threads', '1'];
  const cases: [string, string[], string][] = [
    [
      'not ONNX',
      [text, b, '--out', out],
      `${text}: The file is not an ONNX model (it is text starting with 'not a model').`,
    ],
    [
      'truncated',
      [a, cut, '--out', out],
      `${cut}: The file ends early (index out of range); it is truncated or damaged.`,
    ],
    ['alpha', [a, b, '--alpha', '1.5', '--out', out], 'Expected --alpha to be in [0, 1], got 1.5'],
    [
      'architectures',
      [a, vgg, ...quick, '--out', out],
      `${vgg} differs from ${a} at node 1 ('conv1' vs 'flatten'): op Conv vs Flatten.`,
    ],
    [
      'out = input',
      [a, b, ...quick, '--out', a],
      `Output path ${a} is one of the inputs; choose another --out.`,
    ],
    [
      'unwritable out',
      [a, b, ...quick, '--out', join(dir, 'missing', 'm.onnx')],
      `Cannot write ${join(dir, 'missing', 'm.onnx')} (ENOENT); check that its folder exists and is writable.`,
    ],
  ];
  const before = readFileSync(a);
  // Two at a time: each spawn pays tsx's start-up; the machine has two cores.
  const results: { code: number | null; stderr: string }[] = [];
  for (let i = 0; i < cases.length; i += 2)
    results.push(
      ...(await Promise.all(cases.slice(i, i + 2).map(([, args]) => zipit(['merge', ...args])))),
    );
  for (const [i, [name, , message]] of cases.entries()) {
    const { code, stderr } = results[i]!;
    assert.notEqual(code, 0, `${name}: exit code`);
    const errors = stderr.split('\n').filter((line) => line.startsWith('zipit: error:'));
    assert.deepEqual(errors, [`zipit: error: ${message}`], `${name}: stderr was ${stderr}`);
    assert.doesNotMatch(stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  assert.equal(existsSync(out), false, 'no output file appears');
  assert.deepEqual(readdirSync(dir).sort(), [
    'a.onnx',
    'b.onnx',
    'cut.onnx',
    'notes.onnx',
    'vgg.onnx',
  ]);
  assert.equal(Buffer.compare(before, readFileSync(a)), 0, 'the input is untouched');
});
