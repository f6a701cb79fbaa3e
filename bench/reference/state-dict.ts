/**
 * @file Maps a ResNet-20 ONNX file onto the state-dict keys of the reference's `resnet20`
 * (models/resnets.py: conv1, bn1, layer1.0.conv1 ... layer3.2.bn2, layerS.0.shortcut.0/1,
 * linear) by the graph's structure, not by initializer names: PyTorch exports rename modules
 * (`layers.4.conv1`), prefix node names (`/layers/layers.4/conv1/Conv`) and fold or deduplicate
 * constants (a BatchNorm parameter read through an Identity of another one), so names are not
 * trusted. Anything that is not the reference's ResNet-20 fails with one line.
 */
import type { Model, Node, Tensor } from '../../src/index.js';

/** One float32 tensor under its reference state-dict key. */
export interface NamedTensor {
  readonly key: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** A model as the reference's resnet20(w, num_classes) with a `inChannels`-channel conv1 holds it. */
export interface ReferenceStateDict {
  readonly width: number;
  readonly numClasses: number;
  readonly inChannels: number;
  readonly tensors: NamedTensor[];
}

/** Thrown for a model the reference's resnet20 cannot hold; the message is one line. */
export class MappingError extends Error {}

function attrInts(node: Node, name: string): readonly number[] | undefined {
  const a = node.attributes[name];
  return a?.type === 'ints' ? a.value : undefined;
}

function attrNumber(node: Node, name: string): number | undefined {
  const a = node.attributes[name];
  return a?.type === 'int' || a?.type === 'float' ? a.value : undefined;
}

/**
 * Maps `model` (read from `path`, named in messages) to the reference's state dict. The BN
 * running statistics are taken as stored; BatchNorm folded into the convolutions (a PyTorch
 * eval export) cannot be undone and fails.
 */
export function referenceStateDict(model: Model, path: string): ReferenceStateDict {
  const where = (text: string): MappingError =>
    new MappingError(`${path}: ${text}; the reference's resnet20 cannot load this model.`);
  const nodes = model.graph.nodes;
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);

  /** A constant value: an initializer, a Constant node, or an Identity of either. */
  const constant = (value: string): Tensor | undefined => {
    const init = model.graph.initializers.get(value);
    if (init !== undefined) return init;
    const p = producer.get(value);
    if (p?.opType === 'Identity') return constant(p.inputs[0]!);
    if (p?.opType === 'Constant') {
      const v = p.attributes['value'];
      return v?.type === 'tensor' ? v.value : undefined;
    }
    return undefined;
  };
  /** The node computing `value`, looking through Identity nodes. */
  const computedBy = (value: string): Node | undefined => {
    const p = producer.get(value);
    return p?.opType === 'Identity' ? computedBy(p.inputs[0]!) : p;
  };
  const floats = (value: string, what: string): Tensor => {
    const t = constant(value);
    if (t === undefined || t.dtype !== 'float32')
      throw where(`expected ${what} ('${value}') to be a float32 constant`);
    return t;
  };

  const tensors: NamedTensor[] = [];
  const put = (key: string, t: Tensor, dims: readonly number[] = t.dims): void => {
    tensors.push({ key, dims, data: Float32Array.from(t.data as Float32Array) });
  };

  const checkConv = (conv: Node, key: string, stride: number, cin: number, cout: number): void => {
    if (conv.inputs.length > 2 && conv.inputs[2] !== '')
      throw where(
        `convolution '${conv.name}' (${key}) has a bias: BatchNorm is folded into it (PyTorch's eval export); use the BatchNorm-kept file (e.g. a-bn.onnx)`,
      );
    const w = floats(conv.inputs[1]!, `the weight of '${conv.name}'`);
    const kernel = attrInts(conv, 'kernel_shape') ?? w.dims.slice(2);
    const pads = attrInts(conv, 'pads') ?? [0, 0, 0, 0];
    const strides = attrInts(conv, 'strides') ?? [1, 1];
    const dilations = attrInts(conv, 'dilations') ?? [1, 1];
    const group = attrNumber(conv, 'group') ?? 1;
    const autoPad = conv.attributes['auto_pad'];
    const same = (a: readonly number[], b: readonly number[]): boolean =>
      a.length === b.length && a.every((v, i) => v === b[i]);
    if (
      !same(w.dims, [cout, cin, 3, 3]) ||
      !same(kernel, [3, 3]) ||
      !same(pads, [1, 1, 1, 1]) ||
      !same(strides, [stride, stride]) ||
      !same(dilations, [1, 1]) ||
      group !== 1 ||
      (autoPad?.type === 'string' && autoPad.value !== 'NOTSET')
    )
      throw where(
        `expected '${conv.name}' (${key}) to be a 3x3 convolution ${cin}->${cout}, stride ${stride}, padding 1, got weight [${w.dims.join(',')}], stride [${strides.join(',')}], pads [${pads.join(',')}], group ${group}`,
      );
    put(`${key}.weight`, w);
  };
  const checkBn = (bn: Node, key: string, channels: number): void => {
    const epsilon = attrNumber(bn, 'epsilon') ?? 1e-5;
    if (Math.abs(epsilon - 1e-5) > 1e-9)
      throw where(`expected BatchNorm '${bn.name}' (${key}) to have epsilon 1e-5, got ${epsilon}`);
    const names = ['weight', 'bias', 'running_mean', 'running_var'];
    names.forEach((name, i) => {
      const t = floats(bn.inputs[i + 1]!, `${name} of '${bn.name}'`);
      if (t.dims.length !== 1 || t.dims[0] !== channels)
        throw where(
          `expected ${key}.${name} to have ${channels} values, got [${t.dims.join(',')}]`,
        );
      put(`${key}.${name}`, t);
    });
  };
  /** The Conv -> BatchNormalization pair that computes `value`. */
  const convBn = (value: string, what: string): { conv: Node; bn: Node } => {
    const bn = computedBy(value);
    if (bn?.opType !== 'BatchNormalization') {
      if (bn?.opType === 'Conv')
        throw where(
          `${what} ('${bn.name}') has no BatchNormalization after it: BatchNorm is folded (PyTorch's eval export); use the BatchNorm-kept file (e.g. a-bn.onnx)`,
        );
      throw where(
        `expected ${what} to be a BatchNormalization, got ${bn?.opType ?? 'a graph input'}`,
      );
    }
    const conv = computedBy(bn.inputs[0]!);
    if (conv?.opType !== 'Conv')
      throw where(`expected the input of '${bn.name}' to be a Conv, got ${conv?.opType ?? 'none'}`);
    return { conv, bn };
  };
  const reluInput = (value: string, what: string): string => {
    const relu = computedBy(value);
    if (relu?.opType !== 'Relu')
      throw where(`expected ${what} to be a Relu, got ${relu?.opType ?? 'none'}`);
    return relu.inputs[0]!;
  };

  // Stem: the Conv reading the graph input, its BatchNorm, a Relu.
  const input = model.graph.inputs[0];
  if (input === undefined || model.graph.inputs.length !== 1)
    throw where('expected one graph input');
  if (
    !nodes.some((n) => n.opType === 'BatchNormalization') &&
    nodes.some((n) => n.opType === 'Conv' && (n.inputs[2] ?? '') !== '')
  )
    throw where(
      "it has no BatchNormalization nodes and its convolutions have biases: BatchNorm is folded (PyTorch's eval export); use the BatchNorm-kept file (e.g. a-bn.onnx)",
    );
  const adds = nodes.filter((n) => n.opType === 'Add');
  if (adds.length !== 9)
    throw where(`expected 9 residual Adds (ResNet-20: 3 stages of 3 blocks), got ${adds.length}`);
  // Block b: Add(bn2(conv2(relu(bn1(conv1(x))))), shortcut(x)), then Relu.
  let width = 0;
  let inChannels = 0;
  let blockInput = '';
  for (const [b, add] of adds.entries()) {
    const stage = Math.floor(b / 3) + 1;
    const key = `layer${stage}.${b % 3}`;
    const branches = add.inputs.map((v) => ({ value: v, node: computedBy(v) }));
    // The main branch is bn2(conv2(relu(...))); the other is the shortcut.
    const isMain = (v: string): boolean => {
      const bn = computedBy(v);
      if (bn?.opType !== 'BatchNormalization') return false;
      const conv = computedBy(bn.inputs[0]!);
      return conv?.opType === 'Conv' && computedBy(conv.inputs[0]!)?.opType === 'Relu';
    };
    const main = branches.find((x) => isMain(x.value));
    const other = branches.find((x) => x !== main);
    if (main === undefined || other === undefined || add.inputs.length !== 2)
      throw where(
        `expected residual Add '${add.name}' to add a conv-BN-ReLU-conv-BN branch and a shortcut`,
      );
    const second = convBn(main.value, `the residual branch of '${add.name}'`);
    const first = convBn(
      reluInput(second.conv.inputs[0]!, `the input of '${second.conv.name}'`),
      `the input of '${second.conv.name}'`,
    );
    const x = first.conv.inputs[0]!;
    if (b === 0) {
      // The stem computes the first block's input: relu(bn1(conv1(input))).
      const stem = convBn(reluInput(x, `the input of '${first.conv.name}'`), 'the stem');
      if (stem.conv.inputs[0] !== input.name)
        throw where(`expected the stem convolution '${stem.conv.name}' to read the graph input`);
      const w = floats(stem.conv.inputs[1]!, 'the stem weight');
      width = (w.dims[0] ?? 0) / 16;
      inChannels = w.dims[1] ?? 0;
      if (!Number.isInteger(width) || width < 1)
        throw where(`expected the stem to have 16 x width channels, got ${w.dims[0]}`);
      checkConv(stem.conv, 'conv1', 1, inChannels, 16 * width);
      checkBn(stem.bn, 'bn1', 16 * width);
    } else {
      // Every later block reads the previous block's relu(add).
      if (x !== blockInput)
        throw where(
          `expected block ${key} ('${first.conv.name}') to read the output of the previous block`,
        );
    }
    const planes = 16 * width * 2 ** (stage - 1);
    const cin = b === 0 ? 16 * width : b % 3 === 0 ? planes / 2 : planes;
    const stride = b % 3 === 0 && stage > 1 ? 2 : 1;
    checkConv(first.conv, `${key}.conv1`, stride, cin, planes);
    checkBn(first.bn, `${key}.bn1`, planes);
    checkConv(second.conv, `${key}.conv2`, 1, planes, planes);
    checkBn(second.bn, `${key}.bn2`, planes);
    if (stride === 1 && cin === planes) {
      if (other.value !== x)
        throw where(`expected block ${key} ('${add.name}') to have an identity shortcut`);
    } else {
      const sc = convBn(other.value, `the shortcut of '${add.name}'`);
      if (sc.conv.inputs[0] !== x)
        throw where(
          `expected the shortcut '${sc.conv.name}' of block ${key} to read the block input`,
        );
      checkConv(sc.conv, `${key}.shortcut.0`, stride, cin, planes);
      checkBn(sc.bn, `${key}.shortcut.1`, planes);
    }
    const after = nodes.filter((n) => n.inputs.includes(add.outputs[0]!));
    if (after.length !== 1 || after[0]!.opType !== 'Relu')
      throw where(`expected a Relu alone after residual Add '${add.name}'`);
    blockInput = after[0]!.outputs[0]!;
  }

  // Head: global average pool (GlobalAveragePool or ReduceMean), flatten, Gemm.
  const gemms = nodes.filter((n) => n.opType === 'Gemm');
  if (gemms.length !== 1) throw where(`expected one Gemm (the linear head), got ${gemms.length}`);
  const gemm = gemms[0]!;
  let value = gemm.inputs[0]!;
  const pooled = new Set(['Flatten', 'Reshape', 'GlobalAveragePool', 'ReduceMean', 'Squeeze']);
  let sawPool = false;
  for (let p = computedBy(value); p !== undefined && pooled.has(p.opType); p = computedBy(value)) {
    if (p.opType === 'GlobalAveragePool' || p.opType === 'ReduceMean') sawPool = true;
    value = p.inputs[0]!;
  }
  if (!sawPool || value !== blockInput)
    throw where(
      `expected the head '${gemm.name}' to read the average-pooled output of the last block`,
    );
  if ((attrNumber(gemm, 'alpha') ?? 1) !== 1 || (attrNumber(gemm, 'beta') ?? 1) !== 1)
    throw where(`expected Gemm '${gemm.name}' to have alpha = beta = 1`);
  if ((attrNumber(gemm, 'transA') ?? 0) !== 0)
    throw where(`expected Gemm '${gemm.name}' without transA`);
  const w = floats(gemm.inputs[1]!, 'the linear weight');
  const features = 64 * width;
  const transB = (attrNumber(gemm, 'transB') ?? 0) === 1;
  const numClasses = (transB ? w.dims[0] : w.dims[1]) ?? 0;
  if (w.dims.length !== 2 || (transB ? w.dims[1] : w.dims[0]) !== features)
    throw where(
      `expected the linear weight to read ${features} features, got [${w.dims.join(',')}]`,
    );
  if (transB) put('linear.weight', w);
  else {
    // [in, out] -> [out, in], PyTorch's layout.
    const src = w.data as Float32Array;
    const data = new Float32Array(src.length);
    for (let i = 0; i < features; i++)
      for (let o = 0; o < numClasses; o++) data[o * features + i] = src[i * numClasses + o]!;
    tensors.push({ key: 'linear.weight', dims: [numClasses, features], data });
  }
  const bias = gemm.inputs[2];
  if (bias === undefined || bias === '') throw where(`expected Gemm '${gemm.name}' to have a bias`);
  const c = floats(bias, 'the linear bias');
  if (c.dims.length !== 1 || c.dims[0] !== numClasses)
    throw where(`expected the linear bias to have ${numClasses} values, got [${c.dims.join(',')}]`);
  put('linear.bias', c);
  return { width, numClasses, inChannels, tensors };
}
