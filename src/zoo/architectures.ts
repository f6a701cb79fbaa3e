/**
 * @file The model zoo: MLP, VGG-style CNN, CIFAR ResNet-20, a small ViT and torchvision-layout
 * ResNet-18/50, emitted as inference ONNX.
 */
import { fail, ok, type Result } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import type { Model } from '../onnx/model.js';
import {
  classLabelsMetadata,
  preprocessingMetadata,
  type Preprocessing,
} from '../onnx/preprocessing.js';
import { Random } from '../tensor/random.js';
import { batchNorm, conv, linear, relu, type LayerContext } from './layers.js';
import { vit, vitShape } from './vit.js';

/** Architectures the zoo builds and `zipit train` offers. */
export const ARCHITECTURES = ['mlp', 'vgg', 'resnet20', 'vit'] as const;
/** One of {@link ARCHITECTURES}. */
export type Architecture = (typeof ARCHITECTURES)[number];

/**
 * torchvision-layout ResNets (see {@link buildZooModel}'s 'resnet18' / 'resnet50'), built for
 * merge and exporter tests. They are kept out of {@link ARCHITECTURES}, the list `zipit train`
 * validates against, until the trainer is known to handle them.
 */
export const TORCHVISION_ARCHITECTURES = ['resnet18', 'resnet50'] as const;
/** Every architecture {@link buildZooModel} accepts. */
export type ZooArchitecture = Architecture | (typeof TORCHVISION_ARCHITECTURES)[number];
const ZOO_ARCHITECTURES: readonly ZooArchitecture[] = [
  ...ARCHITECTURES,
  ...TORCHVISION_ARCHITECTURES,
];

/** What to build. */
export interface ZooSpec {
  readonly arch: ZooArchitecture;
  /** Width multiplier (the paper's x1, x2, x4, ...). */
  readonly width: number;
  readonly seed: number;
  /** Input C x H x W, e.g. [1, 28, 28]. */
  readonly inputShape: readonly [number, number, number];
  /** Class label of each logit: all classes (shared head) or the model's own (disjoint head). */
  readonly classLabels: readonly number[];
  readonly preprocessing: Omit<Preprocessing, 'inputShape'>;
  /**
   * Blocks per stage of 'resnet18' / 'resnet50' (torchvision: [2, 2, 2, 2] and [3, 4, 6, 3],
   * the defaults); tests pass e.g. [1, 1, 1, 1]. Ignored by the other architectures.
   */
  readonly depth?: readonly number[];
}

/** Builds a freshly initialised model, or fails for a spec out of range. */
export function buildZooModel(spec: ZooSpec): Result<Model> {
  if (!ZOO_ARCHITECTURES.includes(spec.arch)) {
    return fail(
      'bad-argument',
      `Expected --arch to be one of ${ZOO_ARCHITECTURES.join(', ')}, got ${String(spec.arch)}`,
    );
  }
  if (!Number.isInteger(spec.width) || spec.width < 1 || spec.width > 64) {
    return fail('bad-argument', `Expected --width to be an integer in [1, 64], got ${spec.width}`);
  }
  if (spec.classLabels.length < 1)
    return fail('bad-argument', 'Expected at least one class for the head');
  const depth = spec.depth ?? (spec.arch === 'resnet50' ? [3, 4, 6, 3] : [2, 2, 2, 2]);
  if (depth.length < 1 || depth.length > 4 || depth.some((d) => !Number.isInteger(d) || d < 1)) {
    return fail(
      'bad-argument',
      `Expected a ResNet depth of 1 to 4 stages of at least 1 block each, got [${depth.join(', ')}]`,
    );
  }
  const builder = new GraphBuilder(`${spec.arch}-x${spec.width}`);
  const ctx: LayerContext = { builder, random: new Random(spec.seed) };
  const [c, h, w] = spec.inputShape;
  const x = builder.input('input', ['N', c, h, w]);
  const numClasses = spec.classLabels.length;
  let logits: string;
  switch (spec.arch) {
    case 'mlp':
      logits = mlp(ctx, x, c * h * w, 256 * spec.width, numClasses);
      break;
    case 'vgg':
      logits = vgg(ctx, x, c, h, w, spec.width, numClasses);
      break;
    case 'resnet20':
      logits = resnet20(ctx, x, c, spec.width, numClasses);
      break;
    case 'vit': {
      const shape = vitShape(spec.width);
      if (h % shape.patch !== 0 || w % shape.patch !== 0) {
        return fail(
          'bad-argument',
          `Expected image sides that are multiples of the ViT's ${shape.patch}-pixel patches, got ${h}x${w}`,
        );
      }
      logits = vit(ctx, x, spec.inputShape, shape, numClasses);
      break;
    }
    case 'resnet18':
      logits = torchvisionResnet(ctx, x, c, spec.width, depth, 'basic', numClasses);
      break;
    case 'resnet50':
      logits = torchvisionResnet(ctx, x, c, spec.width, depth, 'bottleneck', numClasses);
      break;
  }
  builder.node('Identity', [logits], {}, { name: 'logits_out', outputs: ['logits'] });
  builder.output('logits', ['N', numClasses]);
  return ok(
    builder.build({
      ...preprocessingMetadata({ ...spec.preprocessing, inputShape: spec.inputShape }),
      ...classLabelsMetadata([spec.classLabels]),
      'zipit.arch': spec.arch,
      'zipit.width': String(spec.width),
      'zipit.seed': String(spec.seed),
    }),
  );
}

function mlp(
  ctx: LayerContext,
  x: string,
  inFeatures: number,
  hidden: number,
  numClasses: number,
): string {
  const flat = ctx.builder.op('Flatten', [x], { axis: 1 });
  const h1 = relu(ctx, linear(ctx, 'fc1', flat, inFeatures, hidden));
  const h2 = relu(ctx, linear(ctx, 'fc2', h1, hidden, hidden));
  return linear(ctx, 'fc3', h2, hidden, numClasses);
}

function vgg(
  ctx: LayerContext,
  x: string,
  c: number,
  h: number,
  w: number,
  width: number,
  numClasses: number,
): string {
  // Two stages of two conv-bn-relu, each followed by a 2x2 max-pool (the fixture's layout).
  const plan: Array<number | 'pool'> = [
    32 * width,
    32 * width,
    'pool',
    64 * width,
    64 * width,
    'pool',
  ];
  let value = x;
  let channels = c;
  let height = h;
  let widthPx = w;
  let index = 0;
  for (const step of plan) {
    if (step === 'pool') {
      value = ctx.builder.op('MaxPool', [value], { kernel_shape: [2, 2], strides: [2, 2] });
      height = Math.floor(height / 2);
      widthPx = Math.floor(widthPx / 2);
      continue;
    }
    index += 1;
    value = relu(
      ctx,
      batchNorm(ctx, `bn${index}`, conv(ctx, `conv${index}`, value, channels, step), step),
    );
    channels = step;
  }
  const flat = ctx.builder.op('Flatten', [value], { axis: 1 });
  const hidden = relu(ctx, linear(ctx, 'fc1', flat, channels * height * widthPx, 128 * width));
  return linear(ctx, 'fc2', hidden, 128 * width, numClasses);
}

function resnet20(
  ctx: LayerContext,
  x: string,
  c: number,
  width: number,
  numClasses: number,
): string {
  // He et al.'s CIFAR ResNet: 3 stages of 3 BasicBlocks at 16w/32w/64w channels.
  let channels = 16 * width;
  let value = relu(ctx, batchNorm(ctx, 'bn1', conv(ctx, 'conv1', x, c, channels), channels));
  for (const [stage, stageWidth] of [16 * width, 32 * width, 64 * width].entries()) {
    for (let block = 0; block < 3; block++) {
      const stride = stage > 0 && block === 0 ? 2 : 1;
      const name = `layer${stage + 1}.${block}`;
      const a = relu(
        ctx,
        batchNorm(
          ctx,
          `${name}.bn1`,
          conv(ctx, `${name}.conv1`, value, channels, stageWidth, { stride }),
          stageWidth,
        ),
      );
      const b = batchNorm(
        ctx,
        `${name}.bn2`,
        conv(ctx, `${name}.conv2`, a, stageWidth, stageWidth),
        stageWidth,
      );
      const shortcut =
        stride !== 1 || channels !== stageWidth
          ? batchNorm(
              ctx,
              `${name}.shortcut.1`,
              conv(ctx, `${name}.shortcut.0`, value, channels, stageWidth, { stride }),
              stageWidth,
            )
          : value;
      value = relu(ctx, ctx.builder.op('Add', [b, shortcut]));
      channels = stageWidth;
    }
  }
  const pooled = ctx.builder.op('GlobalAveragePool', [value]);
  const flat = ctx.builder.op('Flatten', [pooled], { axis: 1 });
  return linear(ctx, 'linear', flat, channels, numClasses);
}

/** conv-BN, with the BN named after the conv as torchvision's `convN` / `bnN` pairs are. */
function convBn(
  ctx: LayerContext,
  names: readonly [string, string],
  x: string,
  inChannels: number,
  outChannels: number,
  options: { kernel?: number; stride?: number } = {},
): string {
  const y = conv(ctx, names[0], x, inChannels, outChannels, options);
  return batchNorm(ctx, names[1], y, outChannels);
}

/**
 * torchvision's ResNet layout (He et al. 2016): stages of BasicBlocks (ResNet-18/34) or
 * Bottlenecks (1x1-3x3-1x1, expansion 4, stride on the 3x3 as in torchvision's v1.5;
 * ResNet-50/101), a 1x1 conv + BN downsample where the shape changes, GAP and a linear head.
 *
 * NOTE: the stem is a 3x3 stride-1 conv without the 7x7/2 conv and 3x3/2 max-pool, which
 * would shrink a 28x28 input to 7x7 before the first stage (as CIFAR ports of ResNet do).
 * Stage widths are 16w, 32w, 64w, 128w (`width` 4 gives torchvision's 64 ... 512).
 */
function torchvisionResnet(
  ctx: LayerContext,
  x: string,
  c: number,
  width: number,
  depth: readonly number[],
  block: 'basic' | 'bottleneck',
  numClasses: number,
): string {
  const expansion = block === 'bottleneck' ? 4 : 1;
  const stem = 16 * width;
  let value = relu(ctx, convBn(ctx, ['conv1', 'bn1'], x, c, stem));
  let channels = stem;
  for (const [stage, blocks] of depth.entries()) {
    const planes = 16 * width * 2 ** stage;
    const out = planes * expansion;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const name = `layer${stage + 1}.${i}`;
      let residual: string;
      if (block === 'basic') {
        const a = relu(
          ctx,
          convBn(ctx, [`${name}.conv1`, `${name}.bn1`], value, channels, planes, { stride }),
        );
        residual = convBn(ctx, [`${name}.conv2`, `${name}.bn2`], a, planes, planes);
      } else {
        const a = relu(
          ctx,
          convBn(ctx, [`${name}.conv1`, `${name}.bn1`], value, channels, planes, { kernel: 1 }),
        );
        const b = relu(
          ctx,
          convBn(ctx, [`${name}.conv2`, `${name}.bn2`], a, planes, planes, { stride }),
        );
        residual = convBn(ctx, [`${name}.conv3`, `${name}.bn3`], b, planes, out, { kernel: 1 });
      }
      const shortcut =
        stride !== 1 || channels !== out
          ? convBn(ctx, [`${name}.downsample.0`, `${name}.downsample.1`], value, channels, out, {
              kernel: 1,
              stride,
            })
          : value;
      value = relu(ctx, ctx.builder.op('Add', [residual, shortcut]));
      channels = out;
    }
  }
  const pooled = ctx.builder.op('GlobalAveragePool', [value]);
  const flat = ctx.builder.op('Flatten', [pooled], { axis: 1 });
  return linear(ctx, 'fc', flat, channels, numClasses);
}
