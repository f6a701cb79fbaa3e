/**
 * @file Writes the large models of issue 15's robustness cases, built with the ONNX builder:
 * `chain <nodes> <out.onnx>` (an MLP whose hidden layer goes through an Identity chain, for
 * inspect's scaling) and `wide-mlp <hidden> <seed> <out.onnx>` (784-hidden-10, for the merge's
 * memory estimate against its measured peak).
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { GraphBuilder } from '../src/onnx/builder.js';
import { encodeModel, type Model } from '../src/onnx/model.js';
import { float32Tensor } from '../src/onnx/tensor.js';
import { Random } from '../src/tensor/random.js';

/**
 * An 8-wide MLP with `length` Identity nodes between its Relu and its last Gemm: every node of
 * the chain is a cut in one mergeable space, so each one is a stop-point candidate.
 */
export function identityChain(length: number): Model {
  const b = new GraphBuilder('chain');
  const x = b.input('x', ['N', 8]);
  const w1 = b.weight('w1', float32Tensor([8, 8], new Float32Array(64).fill(0.1)));
  const w2 = b.weight('w2', float32Tensor([8, 8], new Float32Array(64).fill(0.1)));
  let h = b.op('Relu', [b.op('Gemm', [x, w1], { transB: 1 })]);
  for (let i = 0; i < length; i++) h = b.op('Identity', [h]);
  b.node('Gemm', [h, w2], { transB: 1 }, { outputs: ['y'] });
  b.output('y', ['N', 8]);
  return b.build();
}

/** A 784-hidden-10 MLP on 1x28x28 images (Flatten, Gemm, Relu, Gemm), seeded. */
export function wideMlp(hidden: number, seed: number): Model {
  const random = new Random(seed);
  const normal = (size: number, std: number): Float32Array => {
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = random.normal() * std;
    return values;
  };
  const b = new GraphBuilder('wide_mlp');
  const x = b.input('input', ['N', 1, 28, 28]);
  const w1 = b.weight('fc1.weight', float32Tensor([hidden, 784], normal(hidden * 784, 0.05)));
  const b1 = b.weight('fc1.bias', float32Tensor([hidden]));
  const w2 = b.weight('fc2.weight', float32Tensor([10, hidden], normal(10 * hidden, 0.01)));
  const b2 = b.weight('fc2.bias', float32Tensor([10]));
  const flat = b.op('Flatten', [x]);
  const h = b.op('Relu', [b.op('Gemm', [flat, w1, b1], { transB: 1 })]);
  b.node('Gemm', [h, w2, b2], { transB: 1 }, { outputs: ['logits'] });
  b.output('logits', ['N', 10]);
  return b.build();
}

// Run as a script, not when scripts/robustness-cases.ts or a test imports the builders.
const [kind, ...args] =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
    ? process.argv.slice(2)
    : [];
if (kind === 'chain' && args.length === 2) {
  writeFileSync(args[1]!, encodeModel(identityChain(Number(args[0]))));
} else if (kind === 'wide-mlp' && args.length === 3) {
  writeFileSync(args[2]!, encodeModel(wideMlp(Number(args[0]), Number(args[1]))));
} else if (kind !== undefined) {
  process.stderr.write(
    'usage: hostile-models.ts chain <nodes> <out> | wide-mlp <hidden> <seed> <out>\n',
  );
  process.exitCode = 1;
}
