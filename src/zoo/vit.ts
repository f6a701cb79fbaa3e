/**
 * @file The zoo's vision transformer, laid out as scripts/torch-train-vit.py's ViT exports: a
 * patch Conv, a class token in front, a learned positional embedding, pre-norm blocks
 * (separate q/k/v projections, exact erf GELU) and a linear head on the class token.
 */
import type { GraphBuilder } from '../onnx/builder.js';
import { float32Tensor, int64Tensor } from '../onnx/tensor.js';
import { conv, linear, truncatedNormal, type LayerContext } from './layers.js';

/** Shape of the zoo ViT: dim = 64 x width, 4 blocks, 4 heads, MLP ratio 2, 4x4 patches. */
export interface VitShape {
  readonly dim: number;
  readonly depth: number;
  readonly heads: number;
  readonly mlpRatio: number;
  readonly patch: number;
}

/** The torch script's defaults at width 1 (139,018 parameters on 28x28 with 10 classes). */
export function vitShape(width: number): VitShape {
  return { dim: 64 * width, depth: 4, heads: 4, mlpRatio: 2, patch: 4 };
}

// Linear weights, the class token and the positions from N(0, 0.02^2) truncated at 2 standard
// deviations, as scripts/torch-train-vit.py (after timm and DeiT) draws them: the same start
// as the PyTorch models the trainer's accuracy is compared with.
const TOKEN_STD = 0.02;

function parameter(ctx: LayerContext, name: string, dims: number[]): string {
  const size = dims.reduce((a, b) => a * b, 1);
  return ctx.builder.weight(
    name,
    float32Tensor(dims, truncatedNormal(ctx.random, size, TOKEN_STD)),
  );
}

/** x W + b on the last axis of [N, T, in], W stored [in, out] as PyTorch's exporter writes it. */
function tokenLinear(
  ctx: LayerContext,
  name: string,
  x: string,
  inDim: number,
  outDim: number,
): string {
  const b = ctx.builder;
  const w = parameter(ctx, `${name}.weight`, [inDim, outDim]);
  const bias = b.weight(`${name}.bias`, float32Tensor([outDim]));
  return b.op('Add', [b.op('MatMul', [x, w], {}, `${name}/MatMul`), bias], {}, `${name}/Add`);
}

function layerNorm(ctx: LayerContext, name: string, x: string, dim: number): string {
  const b = ctx.builder;
  return b.op(
    'LayerNormalization',
    [
      x,
      b.weight(`${name}.weight`, float32Tensor([dim], new Float32Array(dim).fill(1))),
      b.weight(`${name}.bias`, float32Tensor([dim])),
    ],
    { axis: -1, epsilon: { float: 1e-5 } },
    name,
  );
}

function constant(b: GraphBuilder, name: string, values: readonly number[]): string {
  return b.weight(name, int64Tensor([values.length], values));
}

function scalar(b: GraphBuilder, name: string, value: number): string {
  return b.weight(name, float32Tensor([], Float32Array.of(value)));
}

/** GELU written as the exporters write it: x * 0.5 * (1 + erf(x / sqrt 2)). */
function gelu(b: GraphBuilder, name: string, x: string): string {
  const erf = b.op('Erf', [b.op('Div', [x, scalar(b, `${name}.sqrt2`, Math.SQRT2)])]);
  return b.op('Mul', [
    b.op('Mul', [x, b.op('Add', [erf, scalar(b, `${name}.one`, 1)])]),
    scalar(b, `${name}.half`, 0.5),
  ]);
}

function attention(ctx: LayerContext, name: string, x: string, shape: VitShape): string {
  const b = ctx.builder;
  const { dim, heads } = shape;
  const headDim = dim / heads;
  // Reshape's 0 copies the input's dimension: the batch and token counts stay dynamic.
  const split = constant(b, `${name}.split_shape`, [0, 0, heads, headDim]);
  const heads4 = (projection: string, perm: number[]): string => {
    const projected = tokenLinear(ctx, `${name}.${projection}`, x, dim, dim);
    return b.op('Transpose', [b.op('Reshape', [projected, split])], { perm });
  };
  const q = heads4('q', [0, 2, 1, 3]); // [N, h, T, d]
  const k = heads4('k', [0, 2, 3, 1]); // [N, h, d, T]
  const v = heads4('v', [0, 2, 1, 3]);
  const scores = b.op('Mul', [
    b.op('MatMul', [q, k]),
    scalar(b, `${name}.scale`, 1 / Math.sqrt(headDim)),
  ]);
  const mixed = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), v]); // [N, h, T, d]
  const joined = b.op('Reshape', [
    b.op('Transpose', [mixed], { perm: [0, 2, 1, 3] }),
    constant(b, `${name}.join_shape`, [0, 0, dim]),
  ]);
  return tokenLinear(ctx, `${name}.proj`, joined, dim, dim);
}

/**
 * The ViT on a [N, C, H, W] input; returns the [N, classes] logits. H and W must be multiples
 * of the patch.
 */
export function vit(
  ctx: LayerContext,
  x: string,
  inputShape: readonly [number, number, number],
  shape: VitShape,
  numClasses: number,
): string {
  const b = ctx.builder;
  const [c, h, w] = inputShape;
  const { dim, patch } = shape;
  const tokens = (h / patch) * (w / patch);
  const patches = conv(ctx, 'patch', x, c, dim, {
    kernel: patch,
    stride: patch,
    bias: true,
    pad: 0,
  });
  const flat = b.op('Reshape', [patches, constant(b, 'patch.flatten_shape', [0, dim, -1])]);
  const sequence = b.op('Transpose', [flat], { perm: [0, 2, 1] }); // [N, T, dim]
  // The class token broadcast to [N, 1, dim]: Expand's shape [N, 1, 1] takes N from the data.
  const batch = b.op('Slice', [
    b.op('Shape', [sequence]),
    constant(b, 'cls.batch_start', [0]),
    constant(b, 'cls.batch_end', [1]),
  ]);
  const expandShape = b.op('Concat', [batch, constant(b, 'cls.ones', [1, 1])], { axis: 0 });
  const cls = b.op('Expand', [parameter(ctx, 'cls', [1, 1, dim]), expandShape]);
  let value = b.op('Add', [
    b.op('Concat', [cls, sequence], { axis: 1 }),
    parameter(ctx, 'pos', [1, tokens + 1, dim]),
  ]);
  for (let i = 0; i < shape.depth; i++) {
    const name = `blocks.${i}`;
    value = b.op('Add', [
      value,
      attention(ctx, `${name}.attn`, layerNorm(ctx, `${name}.norm1`, value, dim), shape),
    ]);
    const hidden = dim * shape.mlpRatio;
    const mlp = tokenLinear(
      ctx,
      `${name}.fc2`,
      gelu(
        b,
        `${name}.gelu`,
        tokenLinear(ctx, `${name}.fc1`, layerNorm(ctx, `${name}.norm2`, value, dim), dim, hidden),
      ),
      hidden,
      dim,
    );
    value = b.op('Add', [value, mlp]);
  }
  const first = b.op(
    'Gather',
    [layerNorm(ctx, 'norm', value, dim), b.weight('cls.index', int64Tensor([], [0]))],
    {
      axis: 1,
    },
  );
  return linear(ctx, 'head', first, dim, numClasses, { std: TOKEN_STD });
}
