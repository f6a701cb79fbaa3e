/** @file The step graph's forward pass: BatchNormalization on batch statistics, NCHWc Convs. */
import { float } from '../onnx/builder.js';
import type { Node } from '../onnx/model.js';
import { blockedConv, blockedConvFits, blockedFilter } from './blocked-layout.js';
import { AXES_NHW, type Emitter } from './emitter.js';
import type { PlannedNode, TrainingPlan } from './plan.js';

/** What the BN backward rule needs from its forward pass. */
export interface BatchNormSaved {
  readonly mean: string;
  readonly variance: string;
  readonly nextMean: string;
  readonly nextVar: string;
}

/** What the LayerNormalization backward rule needs: its extra outputs, shaped [..., 1]. */
export interface LayerNormSaved {
  readonly mean: string;
  readonly invStdDev: string;
}

/** What the forward pass leaves for the backward pass and the step's state. */
export interface Forward {
  /** The saved batch statistics of each BatchNormalization node. */
  readonly saved: ReadonlyMap<PlannedNode, BatchNormSaved>;
  /** The saved statistics of each LayerNormalization node. */
  readonly layerNorms: ReadonlyMap<PlannedNode, LayerNormSaved>;
  /** Each running-statistic input with the tensor holding its next value. */
  readonly nextStats: readonly (readonly [string, string])[];
}

/** Emits the forward pass of `plan`; `block` is the NCHWc channel block, when wanted. */
export function emitForward(e: Emitter, plan: TrainingPlan, block: number | undefined): Forward {
  const b = e.b;
  const saved = new Map<PlannedNode, BatchNormSaved>();
  const layerNorms = new Map<PlannedNode, LayerNormSaved>();
  const nextStats: Array<[string, string]> = [];
  for (const p of plan.nodes) {
    if (p.op === 'LayerNormalization') {
      // The op's optional outputs give the statistics the backward pass reuses.
      const [, mean, invStdDev] = b.node(
        'LayerNormalization',
        p.node.inputs,
        attributesOf(p.node),
        {
          name: p.node.name,
          outputs: [
            p.node.outputs[0]!,
            `${p.node.outputs[0]!}/mean`,
            `${p.node.outputs[0]!}/inv_std`,
          ],
        },
      );
      layerNorms.set(p, { mean: mean!, invStdDev: invStdDev! });
    } else if (p.op === 'BatchNormalization') {
      const bn = batchNormForward(e, p);
      saved.set(p, bn);
      nextStats.push([p.node.inputs[3]!, bn.nextMean], [p.node.inputs[4]!, bn.nextVar]);
    } else if (p.op === 'Conv' && block !== undefined && blockedConvFits(p, block)) {
      const [x, w, bias] = p.node.inputs as [string, string, string | undefined];
      blockedConv(e, x, blockedFilter(e, w, p.inputShapes[1]!, block), bias, attributesOf(p.node), {
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
  return { saved, layerNorms, nextStats };
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

/** The FLOAT attribute `name` of `node`, or `fallback` when absent. */
export function floatAttribute(node: Node, name: string, fallback: number): number {
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
