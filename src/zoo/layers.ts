/** @file Seeded layer constructors shared by the zoo's architectures (Kaiming-initialised). */
import { GraphBuilder } from '../onnx/builder.js';
import { float32Tensor } from '../onnx/tensor.js';
import { Random } from '../tensor/random.js';

/** A builder plus the random source that initialises its weights. */
export interface LayerContext {
  readonly builder: GraphBuilder;
  readonly random: Random;
}

function kaimingNormal(random: Random, dims: number[], fanIn: number): Float32Array {
  // He et al. 2015, fan-in mode, gain sqrt(2) for ReLU networks.
  const std = Math.sqrt(2 / fanIn);
  const values = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = random.normal() * std;
  return values;
}

/** N(0, std^2) truncated at 2 standard deviations, as PyTorch transformers draw their weights. */
export function truncatedNormal(random: Random, size: number, std: number): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    let z = random.normal();
    while (Math.abs(z) > 2) z = random.normal();
    values[i] = z * std;
  }
  return values;
}

/** Conv (no bias when followed by BN), kernel k x k, 'same' padding for odd k unless `pad` says. */
export function conv(
  ctx: LayerContext,
  name: string,
  x: string,
  inChannels: number,
  outChannels: number,
  options: { kernel?: number; stride?: number; bias?: boolean; pad?: number } = {},
): string {
  const k = options.kernel ?? 3;
  const stride = options.stride ?? 1;
  const dims = [outChannels, inChannels, k, k];
  const w = ctx.builder.weight(
    `${name}.weight`,
    float32Tensor(dims, kaimingNormal(ctx.random, dims, inChannels * k * k)),
  );
  const inputs = [x, w];
  if (options.bias) inputs.push(ctx.builder.weight(`${name}.bias`, float32Tensor([outChannels])));
  const pad = options.pad ?? (k - 1) >> 1;
  return ctx.builder.op(
    'Conv',
    inputs,
    { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], group: 1 },
    name,
  );
}

/** BatchNormalization in inference form: gamma 1, beta 0, running mean 0, var 1. */
export function batchNorm(ctx: LayerContext, name: string, x: string, channels: number): string {
  const b = ctx.builder;
  const ones = float32Tensor([channels], new Float32Array(channels).fill(1));
  return b.op(
    'BatchNormalization',
    [
      x,
      b.weight(`${name}.weight`, ones),
      b.weight(`${name}.bias`, float32Tensor([channels])),
      b.weight(`${name}.running_mean`, float32Tensor([channels])),
      b.weight(
        `${name}.running_var`,
        float32Tensor([channels], new Float32Array(channels).fill(1)),
      ),
    ],
    { epsilon: { float: 1e-5 }, momentum: { float: 0.9 } },
    name,
  );
}

/**
 * Linear layer as Gemm(x, W^T) + b, W stored [out, in] like PyTorch (transB = 1); Kaiming-normal
 * unless `std` asks for a truncated normal.
 */
export function linear(
  ctx: LayerContext,
  name: string,
  x: string,
  inFeatures: number,
  outFeatures: number,
  options: { std?: number } = {},
): string {
  const dims = [outFeatures, inFeatures];
  const values =
    options.std === undefined
      ? kaimingNormal(ctx.random, dims, inFeatures)
      : truncatedNormal(ctx.random, outFeatures * inFeatures, options.std);
  const w = ctx.builder.weight(`${name}.weight`, float32Tensor(dims, values));
  const bias = ctx.builder.weight(`${name}.bias`, float32Tensor([outFeatures]));
  return ctx.builder.op('Gemm', [x, w, bias], { transB: 1 }, name);
}

/** Element-wise ReLU. */
export function relu(ctx: LayerContext, x: string): string {
  return ctx.builder.op('Relu', [x]);
}
