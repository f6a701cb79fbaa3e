/** @file ONNX I/O: lossless round trips, what we write loads in onnxruntime, clear failures for bad files. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeModel, encodeModel } from '../../src/onnx/model.js';
import { readModelFile, writeFileAtomic, writeModelFile } from '../../src/onnx/files.js';
import { modelProtoType } from '../../src/onnx/schema.js';
import { tensorFromProto, tensorToProto, float32Tensor } from '../../src/onnx/tensor.js';
import {
  maxAbsDiff,
  probeInput,
  runModel,
  temporaryDirectory,
  TORCH_DIR,
  zooModel,
} from '../helpers.js';

test('protobuf read -> write of every PyTorch fixture is byte-identical', () => {
  for (const dir of ['mlp', 'vgg', 'resnet8']) {
    const bytes = readFileSync(join(TORCH_DIR, dir, 'a.onnx'));
    const type = modelProtoType();
    const again = type.encode(type.decode(bytes)).finish();
    assert.equal(Buffer.compare(bytes, Buffer.from(again)), 0, `${dir} changed in a round trip`);
  }
});

test('IR decode -> encode -> decode keeps nodes, weights, metadata and the function', async () => {
  const model = zooModel('resnet20');
  const bytes = encodeModel(model);
  const back = decodeModel(bytes);
  assert.ok(back.ok);
  assert.equal(back.value.graph.nodes.length, model.graph.nodes.length);
  assert.deepEqual(back.value.metadata, model.metadata);
  assert.deepEqual(back.value.opsetImports, model.opsetImports);
  for (const [name, tensor] of model.graph.initializers) {
    assert.deepEqual(back.value.graph.initializers.get(name)?.data, tensor.data, name);
  }
  assert.equal(Buffer.compare(Buffer.from(encodeModel(back.value)), Buffer.from(bytes)), 0);
  const input = probeInput();
  assert.ok(
    maxAbsDiff(
      (await runModel(model, input)).logits!,
      (await runModel(back.value, input)).logits!,
    ) === 0,
  );
});

test('tensors in typed fields (float_data, int64_data) decode like raw_data', () => {
  const typed = tensorFromProto({
    name: 'w',
    dims: [2, 2],
    data_type: 1,
    float_data: [1, 2, 3, 4],
  });
  assert.ok(typed.ok);
  assert.deepEqual(Array.from(typed.value.data as Float32Array), [1, 2, 3, 4]);
  const ints = tensorFromProto({ name: 's', dims: [2], data_type: 7, int64_data: [3, -1] });
  assert.ok(ints.ok);
  assert.deepEqual(Array.from(ints.value.data as BigInt64Array), [3n, -1n]);
  const raw = tensorFromProto(tensorToProto('r', float32Tensor([3], Float32Array.of(1.5, -2, 3))));
  assert.ok(raw.ok);
  assert.deepEqual(Array.from(raw.value.data as Float32Array), [1.5, -2, 3]);
});

test('graph inputs that duplicate initializers (older exporters) are treated as weights', () => {
  const model = zooModel('mlp');
  const type = modelProtoType();
  const proto = type.toObject(type.decode(encodeModel(model)), { longs: Number }) as {
    graph: { input: object[]; initializer: { name: string; dims: number[]; data_type: number }[] };
  };
  for (const t of proto.graph.initializer)
    proto.graph.input.push({
      name: t.name,
      type: {
        tensor_type: {
          elem_type: t.data_type,
          shape: { dim: t.dims.map((d) => ({ dim_value: d })) },
        },
      },
    });
  const decoded = decodeModel(type.encode(type.fromObject(proto)).finish());
  assert.ok(decoded.ok);
  assert.deepEqual(
    decoded.value.graph.inputs.map((i) => i.name),
    ['input'],
  );
});

test('EXPECTED FAILURE - a file that is not ONNX', () => {
  const dir = temporaryDirectory('zipit-');
  writeFileSync(join(dir, 'x.onnx'), 'hello, this is text\n');
  const result = readModelFile(join(dir, 'x.onnx'));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'not-onnx');
  assert.match(result.message, /x\.onnx: The file is not an ONNX model/);
});

test('EXPECTED FAILURE - a truncated ONNX file', () => {
  const dir = temporaryDirectory('zipit-');
  const bytes = readFileSync(join(TORCH_DIR, 'mlp', 'a.onnx'));
  writeFileSync(join(dir, 'cut.onnx'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  const result = readModelFile(join(dir, 'cut.onnx'));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'truncated');
  assert.match(result.message, /cut\.onnx: The file ends early/);
});

test('EXPECTED FAILURE - external-data tensors are rejected with a fix', () => {
  const result = tensorFromProto({
    name: 'fc.weight',
    dims: [2],
    data_type: 1,
    data_location: 1,
    external_data: [{ key: 'location', value: 'w.bin' }],
  });
  assert.ok(!result.ok);
  assert.equal(result.reason, 'external-data');
  assert.match(
    result.message,
    /Tensor 'fc\.weight' stores its data in an external file.*save_as_external_data=False/,
  );
});

test('EXPECTED FAILURE - a missing model file', () => {
  const result = readModelFile('/nonexistent/model.onnx');
  assert.ok(!result.ok);
  assert.equal(result.message, 'Model file not found: /nonexistent/model.onnx');
});

test('EXPECTED FAILURE - an unwritable output leaves no file behind', () => {
  const dir = temporaryDirectory('zipit-');
  const result = writeModelFile(join(dir, 'missing-folder', 'm.onnx'), zooModel('mlp'));
  assert.ok(!result.ok);
  assert.equal(result.reason, 'unwritable-output');
  assert.match(result.message, /Cannot write .*m\.onnx \(ENOENT\); check that its folder exists/);
  const protect = writeFileAtomic(join(dir, 'a.onnx'), 'x', [join(dir, 'a.onnx')]);
  assert.ok(!protect.ok);
  assert.match(protect.message, /is one of the inputs/);
  assert.equal(existsSync(join(dir, 'a.onnx')), false);
  assert.deepEqual(readdirSync(dir), []);
});
