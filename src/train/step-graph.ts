/** @file Builds the ONNX "training step" graph of a {@link TrainingPlan}: forward pass with
 * batch-statistics BatchNormalization, softmax cross-entropy, the backward pass written as
 * ordinary ONNX ops, and SGD with momentum and weight decay, so one session run is one step.
 */
import { fail, ok, type Result } from '../errors.js';
import { GraphBuilder, float, type AttributeInput, type NodeOptions } from '../onnx/builder.js';
import type { Model, Node } from '../onnx/model.js';
import { float32Tensor, int64Tensor } from '../onnx/tensor.js';
import { geometryOf, type PlannedNode, type TrainableOp, type TrainingPlan } from './plan.js';

/** How the weight gradient of a Conv is expressed (both exact; they differ only in speed). */
export type ConvWeightGrad = 'conv' | 'im2col';

/** Hyper-parameters baked into the step graph; the learning rate is fed per step. */
export interface StepGraphOptions {
  /** SGD momentum (PyTorch convention: v = mu * v + g; w -= lr * v). */
  readonly momentum: number;
  /** L2 weight decay, on the parameters `decay` names. */
  readonly weightDecay: number;
  /**
   * Default 'all': every trainable parameter (BN affine parameters and biases too), as
   * PyTorch's SGD does with `weight_decay` and as the reference's models were trained;
   * 'weights': Conv and Gemm weights only.
   */
  readonly decay?: 'all' | 'weights';
  /** Default 'im2col'; see {@link ConvWeightGrad}. */
  readonly convWeightGrad?: ConvWeightGrad;
  /**
   * onnxruntime's NCHWc channel block on this machine (`nchwcBlockSize()` in runtime/). When
   * set, every Conv whose channels are multiples of it runs forward, input gradient and (when
   * the batch is a multiple too) weight gradient as com.microsoft.nchwc ops, with the filters
   * reordered in the graph each step. onnxruntime only blocks convolutions with constant
   * filters itself, so a training graph would otherwise get the slower plain NCHW kernels.
   * Pass exactly the probed value: the graph's filter orders assume onnxruntime's block, and
   * any other value gives wrong gradients, not an error.
   */
  readonly nchwcBlock?: number;
}

/** Names of the step graph's inputs and outputs, so the loop can feed and collect them. */
export interface StepGraphNames {
  /** `[N, C, H, W]` normalised images. */
  readonly input: string;
  /** `[N, classes]` one-hot targets (float, so soft targets would work too). */
  readonly targets: string;
  /** `[]` learning rate of this step. */
  readonly learningRate: string;
  /** `[]` mean cross-entropy of the batch. */
  readonly loss: string;
  /** `[N, classes]` logits of the batch (before the update). */
  readonly logits: string;
  /** State carried between steps: each input name and the output holding its next value. */
  readonly state: readonly { readonly input: string; readonly output: string }[];
}

/** The step graph and its interface. */
export interface StepGraph {
  readonly model: Model;
  readonly names: StepGraphNames;
}

/** Graph input holding the momentum buffer of weight `name`. */
export function momentumName(name: string): string {
  return `momentum:${name}`;
}

/** Graph output holding the next value of state input `name`. */
export function nextName(name: string): string {
  return `next:${name}`;
}

const AXES_NHW = [0, 2, 3];
/** onnxruntime's contrib domain of blocked-layout (NCHWc) CPU kernels. */
const NCHWC = 'com.microsoft.nchwc';

/** A builder whose generated names cannot collide with the forward graph's copied names. */
class StepBuilder extends GraphBuilder {
  override node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    options: NodeOptions = {},
  ): string[] {
    return super.node(opType, inputs, attributes, {
      ...options,
      name: options.name ?? this.fresh(`step/${opType.toLowerCase()}`),
    });
  }
}

/** Emits the step graph; fails if a node's layout is one the rules do not cover. */
export function buildStepGraph(plan: TrainingPlan, options: StepGraphOptions): Result<StepGraph> {
  const b = new StepBuilder('training-step');
  const e = new Emitter(b);
  const n = plan.batchSize;
  const input = b.input(plan.input, plan.inputShape);
  const targets = b.input('targets', [n, plan.numClasses]);
  const learningRate = b.input('learning_rate', []);

  // Every initializer becomes a fed input: weights and running statistics change each step.
  const trainable = new Set<string>();
  const runningStats = new Set<string>();
  for (const p of plan.nodes) {
    if (p.op === 'BatchNormalization') {
      trainable.add(p.node.inputs[1]!).add(p.node.inputs[2]!);
      runningStats.add(p.node.inputs[3]!).add(p.node.inputs[4]!);
    } else if (p.op === 'Conv' || p.op === 'Gemm') {
      for (const name of p.node.inputs.slice(1)) trainable.add(name);
    }
  }
  for (const [name, tensor] of plan.initializers) {
    if (!trainable.has(name) && !runningStats.has(name)) {
      return fail(
        'unsupported-model',
        `Initializer '${name}' is neither a weight nor a BN statistic the trainer knows.`,
      );
    }
    b.input(name, tensor.dims);
  }

  /* ---------- forward ---------- */
  const saved = new Map<PlannedNode, BatchNormSaved>();
  const nextStats: Array<[string, string]> = [];
  const block = options.nchwcBlock;
  for (const p of plan.nodes) {
    if (p.op === 'BatchNormalization') {
      const bn = batchNormForward(e, p);
      saved.set(p, bn);
      nextStats.push([p.node.inputs[3]!, bn.nextMean], [p.node.inputs[4]!, bn.nextVar]);
    } else if (p.op === 'Conv' && block !== undefined && blockedConvFits(p, block)) {
      const [x, w, bias] = p.node.inputs as [string, string, string | undefined];
      e.blockedConv(x, e.blockedFilter(w, p.inputShapes[1]!, block), bias, attributesOf(p.node), {
        channels: p.outputShape[1]!,
        name: p.node.name,
        outputs: p.node.outputs,
      });
    } else {
      b.node(p.node.opType, p.node.inputs, attributesOf(p.node), {
        name: p.node.name,
        outputs: p.node.outputs,
      });
    }
  }

  /* ---------- loss: mean softmax cross-entropy ---------- */
  const logits = plan.output;
  const logProbs = b.op('LogSoftmax', [logits], { axis: 1 });
  const picked = b.op('ReduceSum', [b.op('Mul', [targets, logProbs]), e.ints([0, 1])], {
    keepdims: 0,
  });
  b.node('Mul', [picked, e.scalar(-1 / n)], {}, { outputs: ['loss'] });
  // d loss / d logits = (softmax - targets) / N
  const dLogits = b.op('Mul', [b.op('Sub', [b.op('Exp', [logProbs]), targets]), e.scalar(1 / n)]);

  /* ---------- backward, in reverse topological order ---------- */
  const grads = new Map<string, Gradient[]>();
  const addGrad = (name: string, grad: Gradient): void => {
    const list = grads.get(name);
    if (list) list.push(grad);
    else grads.set(name, [grad]);
  };
  const gradOf = (name: string): string | undefined => {
    const list = grads.get(name);
    if (list === undefined) return undefined;
    const terms = materialize(e, list);
    const sum = terms.length === 1 ? terms[0]! : b.op('Sum', terms);
    grads.set(name, [sum]);
    return sum;
  };
  addGrad(logits, dLogits);
  const convWeightGrad = options.convWeightGrad ?? 'im2col';
  for (const p of [...plan.nodes].reverse()) {
    const dy = gradOf(p.node.outputs[0]!);
    if (dy === undefined) continue;
    const needsInputGrad = p.node.inputs[0] !== input;
    const contributions = GRADIENT_RULES[p.op]({
      e,
      p,
      dy,
      needsInputGrad,
      saved: saved.get(p),
      convWeightGrad,
      block,
    });
    for (const [name, grad] of contributions) addGrad(name, grad);
  }

  /* ---------- SGD with momentum and weight decay ---------- */
  const state: Array<{ input: string; output: string }> = [];
  const weights = new Set(
    plan.nodes.filter((p) => p.op === 'Conv' || p.op === 'Gemm').map((p) => p.node.inputs[1]!),
  );
  const decayed = (name: string): boolean =>
    (options.decay ?? 'all') === 'all' || weights.has(name);
  for (const name of plan.initializers.keys()) {
    if (!trainable.has(name)) continue;
    const grad = gradOf(name);
    if (grad === undefined)
      return fail('unsupported-model', `Weight '${name}' does not affect the loss.`);
    const velocity = b.input(momentumName(name), plan.initializers.get(name)!.dims);
    const g =
      decayed(name) && options.weightDecay !== 0
        ? b.op('Add', [grad, b.op('Mul', [name, e.scalar(options.weightDecay)])])
        : grad;
    const [nextVelocity] = b.node(
      'Add',
      [b.op('Mul', [velocity, e.scalar(options.momentum)]), g],
      {},
      { outputs: [nextName(velocity)] },
    );
    b.node(
      'Sub',
      [name, b.op('Mul', [nextVelocity!, learningRate])],
      {},
      { outputs: [nextName(name)] },
    );
    state.push(
      { input: name, output: nextName(name) },
      { input: velocity, output: nextName(velocity) },
    );
  }
  for (const [name, next] of nextStats) {
    b.node('Identity', [next], {}, { outputs: [nextName(name)] });
    state.push({ input: name, output: nextName(name) });
  }

  b.output('loss', []);
  b.output(logits, [n, plan.numClasses]);
  for (const s of state)
    b.output(s.output, plan.initializers.get(s.input.replace(/^momentum:/, ''))!.dims);
  return ok({
    model: b.build(),
    names: { input, targets, learningRate, loss: 'loss', logits, state },
  });
}

function attributesOf(
  node: Node,
): Record<string, number | readonly number[] | { float: number } | string> {
  const out: Record<string, number | readonly number[] | { float: number } | string> = {};
  for (const [key, a] of Object.entries(node.attributes)) {
    if (a.type === 'int' || a.type === 'ints' || a.type === 'string') out[key] = a.value;
    else if (a.type === 'float') out[key] = float(a.value);
  }
  return out;
}

/** Small helpers over the builder for constants and common patterns. */
class Emitter {
  private readonly constants = new Map<string, string>();
  private readonly sharedOps = new Map<string, string>();
  constructor(readonly b: GraphBuilder) {}

  /** A float32 scalar constant (shared by value). */
  scalar(value: number): string {
    return this.cached(`f:${value}`, () =>
      this.b.weight(`step/const${this.constants.size}`, float32Tensor([], Float32Array.of(value))),
    );
  }

  /** A float32 constant vector. */
  vector(values: readonly number[]): string {
    return this.cached(`v:${values.join(',')}`, () =>
      this.b.weight(
        `step/const${this.constants.size}`,
        float32Tensor([values.length], Float32Array.from(values)),
      ),
    );
  }

  /** An int64 constant vector (axes, shapes, pads). */
  ints(values: readonly number[]): string {
    return this.cached(`i:${values.join(',')}`, () =>
      this.b.weight(`step/const${this.constants.size}`, int64Tensor([values.length], values)),
    );
  }

  /**
   * Filter `w` of shape `dims` [O, I, kh, kw] in the order onnxruntime's NCHWc Conv reads
   * (OIHWBiBo: [O/B][I/B][kh][kw][B of I][B of O]); O and I must be multiples of `block`.
   */
  blockedFilter(w: string, dims: readonly number[], block: number): string {
    const [o, i, kh, kw] = dims as [number, number, number, number];
    const split = this.reshape(w, [o / block, block, i / block, block, kh, kw]);
    return this.reshape(this.b.op('Transpose', [split], { perm: [0, 2, 4, 5, 3, 1] }), dims);
  }

  /**
   * A Conv of NCHW `x` with a blocked filter, run in the NCHWc layout: reorder in, Conv,
   * reorder out to NCHW with `channels` channels. Returns the NCHW output's name. With
   * `padInput`, zeros are written around the blocked input's planes first (see
   * convWeightGradByConv for why), so `attributes` should then carry no pads.
   */
  blockedConv(
    x: string | { readonly blocked: string },
    filter: string,
    bias: string | undefined,
    attributes: Readonly<Record<string, AttributeInput>>,
    out: { channels: number; name?: string; outputs?: readonly string[] },
    padInput?: {
      dims: readonly number[];
      block: number;
      /** Rows/columns added before and after each plane; a negative end crops. */
      pads: { readonly begin: readonly [number, number]; readonly end: readonly [number, number] };
    },
  ): string {
    let blockedX = typeof x === 'string' ? this.reorderInput(x) : x.blocked;
    if (padInput !== undefined) {
      // The blocked planes are [H][W][B]; padding them as a 5-D view copies whole rows of W*B
      // values, which measured faster than padding the NCHW planes beforehand (scratch, 128
      // channels 14x14: 4 ms against 9 ms).
      const [n, c, h, w] = padInput.dims as [number, number, number, number];
      const [bh, bw] = padInput.pads.begin;
      const [eh, ew] = padInput.pads.end;
      const b = padInput.block;
      const planes = this.reshape(blockedX, [n, c / b, h, w, b]);
      const padded = this.shared('Pad', [planes, this.ints([0, 0, bh, bw, 0, 0, 0, eh, ew, 0])]);
      blockedX = this.reshape(padded, [n, c, h + bh + eh, w + bw + ew]);
    }
    const inputs =
      bias === undefined || bias === '' ? [blockedX, filter] : [blockedX, filter, bias];
    // The node keeps the forward Conv's name (profiles stay readable); its blocked output
    // gets a fresh one, since node and first-output names coincide in our models.
    const [blockedY] = this.b.node('Conv', inputs, attributes, {
      domain: NCHWC,
      ...(out.name !== undefined
        ? { name: out.name, outputs: [this.b.fresh(`${out.name}/blocked`)] }
        : {}),
    });
    return this.b.node(
      'ReorderOutput',
      [blockedY!],
      { channels: out.channels },
      { domain: NCHWC, ...(out.outputs !== undefined ? { outputs: out.outputs } : {}) },
    )[0]!;
  }

  /** NCHW `x` in onnxruntime's NCHWc layout (ReorderInput). */
  reorderInput(x: string): string {
    return this.shared('ReorderInput', [x], {}, NCHWC);
  }

  /** `x` with shape `dims`. */
  reshape(x: string, dims: readonly number[]): string {
    return this.shared('Reshape', [x, this.ints(dims)]);
  }

  /**
   * One output of `opType` on `inputs`, emitted once per distinct call: names are never
   * reassigned, so equal calls compute equal tensors. Convs that read the same tensor (a
   * stage's first conv and its projection shortcut) then share its reorders, transposes and
   * padded copies instead of each making its own.
   */
  shared(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    domain?: string,
  ): string {
    const key = `${domain ?? ''}|${opType}|${inputs.join(',')}|${JSON.stringify(attributes)}`;
    let name = this.sharedOps.get(key);
    if (name === undefined) {
      name = this.b.node(opType, inputs, attributes, domain === undefined ? {} : { domain })[0]!;
      this.sharedOps.set(key, name);
    }
    return name;
  }

  /** `scale * x + bias` per channel of an NCHW tensor, in one pass (BatchNormalization with mean 0, var 1, eps 0). */
  channelAffine(x: string, scale: string, bias: string, channels: number): string {
    return this.b.op(
      'BatchNormalization',
      [
        x,
        scale,
        bias,
        this.vector(new Array<number>(channels).fill(0)),
        this.vector(new Array<number>(channels).fill(1)),
      ],
      {
        epsilon: float(0),
      },
    );
  }

  private cached(key: string, make: () => string): string {
    let name = this.constants.get(key);
    if (name === undefined) {
      name = make();
      this.constants.set(key, name);
    }
    return name;
  }
}

/** What the BN backward rule needs from its forward pass. */
interface BatchNormSaved {
  readonly mean: string;
  readonly variance: string;
  readonly nextMean: string;
  readonly nextVar: string;
}

function floatAttribute(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.type === 'float' ? a.value : fallback;
}

function batchNormForward(e: Emitter, p: PlannedNode): BatchNormSaved {
  const b = e.b;
  const [x, gamma, beta, runningMean, runningVar] = p.node.inputs as [
    string,
    string,
    string,
    string,
    string,
  ];
  const [n, , h, w] = p.outputShape as [number, number, number, number];
  const count = n * h * w;
  const epsilon = floatAttribute(p.node, 'epsilon', 1e-5);
  const momentum = floatAttribute(p.node, 'momentum', 0.9);
  const mean = b.op('ReduceMean', [x], { axes: AXES_NHW, keepdims: 0 }); // [C]
  // NOTE: E[x^2] - E[x]^2 reads x once instead of twice; conv outputs here have |mean| of the
  // order of their std, so float32 cancellation stays far below the BN epsilon. Relu clamps
  // the rare tiny negative.
  const meanSquare = b.op('Mul', [
    b.op('ReduceSumSquare', [x], { axes: AXES_NHW, keepdims: 0 }),
    e.scalar(1 / count),
  ]);
  const variance = b.op('Relu', [b.op('Sub', [meanSquare, b.op('Mul', [mean, mean])])]);
  // The inference-form op applies the batch statistics in one fused pass.
  b.node(
    'BatchNormalization',
    [x, gamma, beta, mean, variance],
    { epsilon: float(epsilon) },
    { name: p.node.name, outputs: p.node.outputs },
  );
  // Running statistics as PyTorch keeps them: unbiased batch variance, ONNX momentum convention.
  const nextMean = b.op('Add', [
    b.op('Mul', [runningMean, e.scalar(momentum)]),
    b.op('Mul', [mean, e.scalar(1 - momentum)]),
  ]);
  const unbiased = b.op('Mul', [
    variance,
    e.scalar(((1 - momentum) * count) / Math.max(1, count - 1)),
  ]);
  const nextVar = b.op('Add', [b.op('Mul', [runningVar, e.scalar(momentum)]), unbiased]);
  return { mean, variance, nextMean, nextVar };
}

/** Everything a gradient rule sees. */
interface RuleContext {
  readonly e: Emitter;
  readonly p: PlannedNode;
  /** Name of d loss / d output. */
  readonly dy: string;
  /** False when the op reads the graph input (no gradient wanted there). */
  readonly needsInputGrad: boolean;
  readonly saved: BatchNormSaved | undefined;
  readonly convWeightGrad: ConvWeightGrad;
  /** NCHWc channel block, when blocked convolutions are wanted. */
  readonly block: number | undefined;
}

/** A gradient rule: the gradient contributions of one node to its inputs, as [input name, grad name]. */
type GradientRule = (ctx: RuleContext) => Array<[string, Gradient]>;

/**
 * A gradient term: a tensor's name, or a transposed convolution not yet emitted. The input
 * gradient of a strided Conv is a ConvTranspose; when several Convs with the same geometry
 * read one tensor (a stage's first conv and its projection shortcut), their terms become one
 * ConvTranspose over the concatenated output gradients and filters, which measured 1.5-1.9x
 * (x1) and 1.2-1.4x (x4) faster than two plus their Sum (scratch, 14x14 to 28x28).
 */
type Gradient = string | PendingTransposedConv;

interface PendingTransposedConv {
  readonly dy: string;
  readonly weight: string;
  readonly attributes: Readonly<Record<string, readonly number[]>>;
}

/** The terms of one tensor's gradient as names, merging transposed convs of equal geometry. */
function materialize(e: Emitter, terms: readonly Gradient[]): string[] {
  const names: string[] = [];
  const groups = new Map<string, PendingTransposedConv[]>();
  for (const term of terms) {
    if (typeof term === 'string') {
      names.push(term);
      continue;
    }
    const key = JSON.stringify(term.attributes);
    const group = groups.get(key);
    if (group) group.push(term);
    else groups.set(key, [term]);
  }
  // One tensor from the group's terms: itself when alone, else their concatenation.
  const joined = (tensors: readonly string[], axis: number): string =>
    tensors.length === 1 ? tensors[0]! : e.b.op('Concat', tensors, { axis });
  for (const group of groups.values()) {
    const dy = joined(
      group.map((t) => t.dy),
      1,
    );
    const weight = joined(
      group.map((t) => t.weight),
      0,
    );
    names.push(e.b.op('ConvTranspose', [dy, weight], group[0]!.attributes));
  }
  return names;
}

const GRADIENT_RULES = {
  Identity: ({ p, dy }) => [[p.node.inputs[0]!, dy]],
  Flatten: ({ e, p, dy }) => [[p.node.inputs[0]!, e.reshape(dy, p.inputShapes[0]!)]],
  Relu: ({ e, p, dy }) => {
    const y = p.node.outputs[0]!;
    const active = e.b.op('Greater', [y, e.scalar(0)]);
    // dy times the mask as 0/1 floats: onnxruntime's Where measured 1.7x slower than Cast+Mul
    // (scratch, 128x16x28x28: 4.1 ms against 0.9 + 1.5 ms).
    const mask = e.b.op('Cast', [active], { to: 1 }); // FLOAT
    return [[p.node.inputs[0]!, e.b.op('Mul', [dy, mask])]];
  },
  Add: ({ p, dy }) => p.node.inputs.map((name): [string, string] => [name, dy]),
  GlobalAveragePool: ({ e, p, dy }) => {
    const shape = p.inputShapes[0]!;
    const scaled = e.b.op('Mul', [dy, e.scalar(1 / (shape[2]! * shape[3]!))]);
    return [[p.node.inputs[0]!, e.b.op('Expand', [scaled, e.ints(shape)])]];
  },
  MaxPool: ({ e, p, dy }) => {
    // Non-overlapping pools: a window's gradient goes to the position(s) equal to its max.
    const [n, c, h, w] = p.inputShapes[0] as [number, number, number, number];
    const { kernel } = geometryOf(p.node);
    const [kh, kw] = kernel;
    const upsample = (t: string): string =>
      e.reshape(
        e.b.op('Expand', [
          e.reshape(t, [n, c, h / kh, 1, w / kw, 1]),
          e.ints([n, c, h / kh, kh, w / kw, kw]),
        ]),
        [n, c, h, w],
      );
    const x = p.node.inputs[0]!;
    const isMax = e.b.op('Equal', [x, upsample(p.node.outputs[0]!)]);
    return [[x, e.b.op('Where', [isMax, upsample(dy), e.scalar(0)])]];
  },
  Gemm: ({ e, p, dy, needsInputGrad }) => {
    const [x, w, bias] = p.node.inputs as [string, string, string];
    const out: Array<[string, Gradient]> = [
      [w, e.b.op('Gemm', [dy, x], { transA: 1 })], // [out, in]
      [bias, e.b.op('ReduceSum', [dy, e.ints([0])], { keepdims: 0 })],
    ];
    if (needsInputGrad) out.push([x, e.b.op('MatMul', [dy, w])]); // [N, in]
    return out;
  },
  BatchNormalization: ({ e, p, dy, saved }) => {
    if (saved === undefined) throw new Error('BN backward without its forward');
    const b = e.b;
    const [x, gamma, beta] = p.node.inputs as [string, string, string];
    const [n, c, h, w] = p.outputShape as [number, number, number, number];
    const count = n * h * w;
    const epsilon = floatAttribute(p.node, 'epsilon', 1e-5);
    const invStd = b.op('Reciprocal', [
      b.op('Sqrt', [b.op('Add', [saved.variance, e.scalar(epsilon)])]),
    ]);
    const sumDy = b.op('ReduceSum', [dy, e.ints(AXES_NHW)], { keepdims: 0 }); // [C] = d beta
    const sumDyX = b.op('ReduceSum', [b.op('Mul', [dy, x]), e.ints(AXES_NHW)], { keepdims: 0 });
    // d gamma = sum(dy * xhat) = invStd * (sum(dy * x) - mean * sum(dy))
    const dGamma = b.op('Mul', [invStd, b.op('Sub', [sumDyX, b.op('Mul', [saved.mean, sumDy])])]);
    // dx = a*dy + k*x + c per channel, from dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)).
    const a = b.op('Mul', [gamma, invStd]);
    const k = b.op('Mul', [b.op('Mul', [a, invStd]), b.op('Mul', [dGamma, e.scalar(-1 / count)])]);
    const shift = b.op('Sub', [
      b.op('Mul', [a, b.op('Mul', [sumDy, e.scalar(-1 / count)])]),
      b.op('Mul', [k, saved.mean]),
    ]);
    const dx = b.op('Add', [
      e.channelAffine(dy, a, e.vector(new Array<number>(c).fill(0)), c),
      e.channelAffine(x, k, shift, c),
    ]);
    return [
      [x, dx],
      [gamma, dGamma],
      [beta, sumDy],
    ];
  },
  Conv: (ctx) => convGradient(ctx),
} satisfies Record<TrainableOp, GradientRule>;

function convGradient({
  e,
  p,
  dy,
  needsInputGrad,
  convWeightGrad,
  block,
}: RuleContext): Array<[string, Gradient]> {
  const b = e.b;
  const [x, w] = p.node.inputs as [string, string];
  const out: Array<[string, Gradient]> = [];
  const blocked = block !== undefined && blockedConvFits(p, block) ? block : undefined;
  // dY in the NCHWc layout feeds both the input gradient's Conv and the weight gradient's
  // filter; reordering it once saves a copy per Conv. Made on first use.
  let blockedDy: string | undefined;
  const sharedBlockedDy = (): string => (blockedDy ??= e.reorderInput(dy));
  const dW =
    blocked !== undefined && p.inputShapes[0]![0]! % blocked === 0
      ? convWeightGradByConv(e, p, dy, { block: blocked, blockedDy: sharedBlockedDy })
      : convWeightGrad === 'conv'
        ? convWeightGradByConv(e, p, dy)
        : convWeightGradByIm2col(e, p, dy);
  out.push([w, dW]);
  if (p.node.inputs[2] !== undefined && p.node.inputs[2] !== '') {
    out.push([p.node.inputs[2], b.op('ReduceSum', [dy, e.ints(AXES_NHW)], { keepdims: 0 })]);
  }
  if (needsInputGrad) {
    out.push([
      x,
      convInputGrad(
        e,
        p,
        dy,
        blocked === undefined ? undefined : { block: blocked, blockedDy: sharedBlockedDy },
      ),
    ]);
  }
  return out;
}

/** Whether Conv `p` can run in the NCHWc layout with channel block `block`. */
function blockedConvFits(p: PlannedNode, block: number): boolean {
  const inputChannels = p.inputShapes[0]![1]!;
  const outputChannels = p.outputShape[1]!;
  return inputChannels % block === 0 && outputChannels % block === 0;
}

/** The NCHWc block and dY reordered to it (made once per Conv, on first use). */
interface BlockedGradient {
  readonly block: number;
  readonly blockedDy: () => string;
}

/** dX of a Conv: for stride 1 a Conv with the flipped, transposed kernel (measured faster here than ConvTranspose); otherwise ConvTranspose. */
function convInputGrad(
  e: Emitter,
  p: PlannedNode,
  dy: string,
  blocked: BlockedGradient | undefined,
): Gradient {
  const b = e.b;
  const [, , h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, , oh, ow] = p.outputShape as [number, number, number, number];
  const g = geometryOf(p.node, p.inputShapes[1]);
  const weight = p.node.inputs[1]!;
  if (
    g.strides[0] === 1 &&
    g.strides[1] === 1 &&
    g.pads[0] <= g.kernel[0] - 1 &&
    g.pads[1] <= g.kernel[1] - 1
  ) {
    const transposed = b.op('Transpose', [weight], { perm: [1, 0, 2, 3] }); // [I, O, kh, kw]
    const flipped = b.op('Slice', [
      transposed,
      e.ints([-1, -1]),
      e.ints([-(2 ** 31), -(2 ** 31)]),
      e.ints([2, 3]),
      e.ints([-1, -1]),
    ]);
    const pads = [g.kernel[0] - 1 - g.pads[0], g.kernel[1] - 1 - g.pads[1]];
    const attributes = { kernel_shape: g.kernel, pads: [pads[0]!, pads[1]!, pads[0]!, pads[1]!] };
    if (blocked === undefined) return b.op('Conv', [dy, flipped], attributes);
    const [o, i, kh, kw] = p.inputShapes[1] as [number, number, number, number];
    return e.blockedConv(
      { blocked: blocked.blockedDy() },
      e.blockedFilter(flipped, [i, o, kh, kw], blocked.block),
      undefined,
      attributes,
      {
        channels: i,
      },
    );
  }
  // The transposed convolution is exactly the adjoint of Conv; output_padding restores the
  // rows a strided Conv dropped.
  const outputPadding = [
    h - (g.strides[0] * (oh - 1) + g.kernel[0] - 2 * g.pads[0]),
    w - (g.strides[1] * (ow - 1) + g.kernel[1] - 2 * g.pads[1]),
  ];
  return {
    dy,
    weight,
    attributes: {
      kernel_shape: g.kernel,
      strides: g.strides,
      pads: [g.pads[0], g.pads[1], g.pads[0], g.pads[1]],
      output_padding: outputPadding,
    },
  };
}

/**
 * dW as a Conv of the batch-transposed input with the batch-transposed output gradient: the
 * batch becomes the channels summed over and the output map is the kernel. With `blocked`,
 * the Conv runs in the NCHWc layout (the batch and O must be multiples of the block).
 */
function convWeightGradByConv(
  e: Emitter,
  p: PlannedNode,
  dy: string,
  blocked?: BlockedGradient,
): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, , h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, o, oh, ow] = p.outputShape as [number, number, number, number];
  const xt = e.shared('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  // The zeros are written out rather than left to the Conv's pads: here almost every output
  // position overlaps the border, and onnxruntime's border path measured about 2x slower than
  // its interior one (scratch, blocked, 128 channels 14x14: Conv 116 ms with its own pads,
  // 55 ms + 4 ms for the Pad). The planes end exactly where the kernel's last tap reads, so
  // the Conv's output map is the kernel itself: a strided Conv's padded planes can be a row
  // longer, which made the dilated Conv compute a 4x4 map for a 3x3 kernel (16/9 the work).
  const [kh, kw] = g.kernel;
  const end: [number, number] = [
    g.strides[0] * (oh - 1) + kh - h - g.pads[0],
    g.strides[1] * (ow - 1) + kw - w - g.pads[1],
  ];
  const begin: [number, number] = [g.pads[0], g.pads[1]];
  const padOrCrop = begin.some((v) => v !== 0) || end.some((v) => v !== 0);
  // The strided forward conv becomes a dilated one here.
  const attributes = { kernel_shape: [oh, ow], dilations: g.strides };
  let r: string; // [I, O, kh, kw]
  if (blocked === undefined) {
    const input = padOrCrop
      ? e.shared('Pad', [xt, e.ints([0, 0, begin[0], begin[1], 0, 0, end[0], end[1]])])
      : xt;
    const dyt = b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }); // [O, N, OH, OW]
    r = b.op('Conv', [input, dyt], attributes);
  } else {
    // The blocked filter order of dY^T is [O/B][N/B][OH][OW][B of N][B of O]. From the
    // blocked dY ([N/B][B of N][O/B][OH*OW][B of O]) that is one transpose that keeps the
    // innermost B values together; it measured faster than transposing dY to [O, N, ...],
    // reordering that and moving one axis innermost, and dY's reorder is shared with dX.
    const block = blocked.block;
    const split = e.reshape(blocked.blockedDy(), [n / block, block, o / block, oh * ow, block]);
    const filter = e.reshape(b.op('Transpose', [split], { perm: [2, 0, 3, 1, 4] }), [o, n, oh, ow]);
    const i = p.inputShapes[0]![1]!;
    r = e.blockedConv(
      xt,
      filter,
      undefined,
      attributes,
      { channels: o },
      padOrCrop ? { dims: [i, n, h, w], block, pads: { begin, end } } : undefined,
    );
  }
  return b.op('Transpose', [r], { perm: [1, 0, 2, 3] });
}

/** dW as one Gemm: output gradient [O, N*OH*OW] times the im2col patches [I*kh*kw, N*OH*OW]^T. */
function convWeightGradByIm2col(e: Emitter, p: PlannedNode, dy: string): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, i] = p.inputShapes[0] as [number, number, number, number];
  const [, o, oh, ow] = p.outputShape as [number, number, number, number];
  const [kh, kw] = g.kernel;
  if (g.strides[0] === 1 && g.strides[1] === 1) return convWeightGradFlat(e, p, dy);
  let xt = b.op('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  if (g.pads[0] > 0 || g.pads[1] > 0) {
    xt = b.op('Pad', [xt, e.ints([0, 0, g.pads[0], g.pads[1], 0, 0, g.pads[0], g.pads[1]])]);
  }
  const taps: string[] = [];
  for (let r = 0; r < kh; r++) {
    for (let s = 0; s < kw; s++) {
      const start = [r, s];
      const end = [r + g.strides[0] * (oh - 1) + 1, s + g.strides[1] * (ow - 1) + 1];
      const tap = b.op('Slice', [
        xt,
        e.ints(start),
        e.ints(end),
        e.ints([2, 3]),
        e.ints(g.strides),
      ]); // [I, N, OH, OW]
      taps.push(b.op('Unsqueeze', [tap, e.ints([1])]));
    }
  }
  const patches = e.reshape(taps.length === 1 ? taps[0]! : b.op('Concat', taps, { axis: 1 }), [
    i * kh * kw,
    n * oh * ow,
  ]);
  const dyt = e.reshape(b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }), [o, n * oh * ow]);
  return e.reshape(b.op('Gemm', [dyt, patches], { transB: 1 }), [o, i, kh, kw]);
}

/**
 * Stride-1 dW by im2col over flattened, zero-padded planes: with X padded to [I, N*Hp*Wp] and
 * dY zero-padded to the same grid, a kernel tap (r, s) is a shift by r*Wp + s of the flat
 * index, so every tap is one contiguous slice (a memcpy) rather than a strided 4-D copy.
 * The padding positions of dY are zero, so nothing wraps between rows or images.
 */
function convWeightGradFlat(e: Emitter, p: PlannedNode, dy: string): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, i, h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, o] = p.outputShape as [number, number, number, number];
  const [kh, kw] = g.kernel;
  const [ph, pw] = g.pads;
  const hp = h + 2 * ph;
  const wp = w + 2 * pw;
  const flat = n * hp * wp;
  const used = flat - ((kh - 1) * wp + (kw - 1));
  let xt = b.op('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  if (ph > 0 || pw > 0) xt = b.op('Pad', [xt, e.ints([0, 0, ph, pw, 0, 0, ph, pw])]);
  const xFlat = e.reshape(xt, [i, flat]); // [I, N*Hp*Wp]
  const taps: string[] = [];
  for (let r = 0; r < kh; r++) {
    for (let s = 0; s < kw; s++) {
      const offset = r * wp + s;
      const tap = b.op('Slice', [xFlat, e.ints([offset]), e.ints([offset + used]), e.ints([1])]);
      taps.push(b.op('Unsqueeze', [tap, e.ints([1])])); // [I, 1, used]
    }
  }
  const patches = e.reshape(taps.length === 1 ? taps[0]! : b.op('Concat', taps, { axis: 1 }), [
    i * kh * kw,
    used,
  ]);
  const dyt = b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }); // [O, N, OH, OW]
  const dyGrid = b.op('Pad', [dyt, e.ints([0, 0, 0, 0, 0, 0, kh - 1, kw - 1])]); // [O, N, Hp, Wp]
  const dyFlat = b.op('Slice', [
    e.reshape(dyGrid, [o, flat]),
    e.ints([0]),
    e.ints([used]),
    e.ints([1]),
  ]);
  return e.reshape(b.op('Gemm', [dyFlat, patches], { transB: 1 }), [o, i, kh, kw]);
}
