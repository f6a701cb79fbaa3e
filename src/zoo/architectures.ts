/** @file The model zoo: MLP, VGG-style CNN and CIFAR ResNet-20, emitted as inference ONNX. */
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

/** Architectures the zoo builds. */
export const ARCHITECTURES = ['mlp', 'vgg', 'resnet20'] as const;
/** One of {@link ARCHITECTURES}. */
export type Architecture = (typeof ARCHITECTURES)[number];

/** What to build. */
export interface ZooSpec {
  readonly arch: Architecture;
  /** Width multiplier (the paper's x1, x2, x4, ...). */
  readonly width: number;
  readonly seed: number;
  /** Input C x H x W, e.g. [1, 28, 28]. */
  readonly inputShape: readonly [number, number, number];
  /** Class label of each logit: all classes (shared head) or the model's own (disjoint head). */
  readonly classLabels: readonly number[];
  readonly preprocessing: Omit<Preprocessing, 'inputShape'>;
}

/** Builds a freshly initialised model, or fails for a spec out of range. */
export function buildZooModel(spec: ZooSpec): Result<Model> {
  if (!ARCHITECTURES.includes(spec.arch)) {
    return fail(
      'bad-argument',
      `Expected --arch to be one of ${ARCHITECTURES.join(', ')}, got ${String(spec.arch)}`,
    );
  }
  if (!Number.isInteger(spec.width) || spec.width < 1 || spec.width > 64) {
    return fail('bad-argument', `Expected --width to be an integer in [1, 64], got ${spec.width}`);
  }
  if (spec.classLabels.length < 1)
    return fail('bad-argument', 'Expected at least one class for the head');
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
