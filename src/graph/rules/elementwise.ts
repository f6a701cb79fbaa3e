/** @file Element-wise ops: activations (per-channel) and binary arithmetic (per-channel or residual). */
import { ok, type Result } from '../../errors.js';
import type { Dim } from '../../onnx/model.js';
import type { ValueState } from '../value-state.js';
import { inputState, isConstantInput, shapeFailure } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

function sameShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  return ok(
    ctx.node.outputs.map(() => ({
      shape: x.value.shape,
      ...(x.value.constant ? { constant: true } : {}),
    })),
  );
}

/** Numpy-style broadcast of two shapes. */
export function broadcast(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else if (typeof x !== 'number' || typeof y !== 'number')
      out.push(typeof x === 'number' ? y : x);
    else return undefined;
  }
  return out;
}

function binaryShape(ctx: RuleContext): Result<ValueState[]> {
  const a = inputState(ctx, 0);
  if (!a.ok) return a;
  const b = inputState(ctx, 1);
  if (!b.ok) return b;
  const shape = broadcast(a.value.shape, b.value.shape);
  if (shape === undefined) return shapeFailure(ctx.node, 'input shapes do not broadcast.');
  const constant = a.value.constant === true && b.value.constant === true;
  const known = knownArithmetic(ctx.node.opType, a.value.known, b.value.known);
  return ok([{ shape, ...(constant ? { constant: true } : {}), ...(known ? { known } : {}) }]);
}

function knownArithmetic(
  op: string,
  a: readonly (number | string)[] | undefined,
  b: readonly (number | string)[] | undefined,
): number[] | undefined {
  if (a === undefined || b === undefined) return undefined;
  // A one-element operand broadcasts (`shape * -1`).
  if (a.length === 1 && b.length > 1) a = new Array<number | string>(b.length).fill(a[0]!);
  if (b.length === 1 && a.length > 1) b = new Array<number | string>(a.length).fill(b[0]!);
  if (a.length !== b.length) return undefined;
  if (![...a, ...b].every((v) => typeof v === 'number')) return undefined;
  const f: Record<string, (x: number, y: number) => number> = {
    Add: (x, y) => x + y,
    Sub: (x, y) => x - y,
    Mul: (x, y) => x * y,
    Div: (x, y) => Math.trunc(x / y),
  };
  const apply = f[op];
  return apply ? a.map((x, i) => apply(x as number, b[i] as number)) : undefined;
}

/** Activations and other one-input element-wise ops (also Identity and inference Dropout). */
export const unaryRule: OpRule = { role: 'per-channel', inferShape: sameShape };

/** Add/Sub/Mul/Div: with a constant operand the constant is a per-channel parameter; two activations tie their spaces. */
export const binaryRule: OpRule = {
  role(ctx) {
    if (ctx.inputs[0]?.known !== undefined && ctx.inputs[1]?.known !== undefined) return 'shape';
    const constants = [0, 1].filter((i) => isConstantInput(ctx, i)).length;
    return constants >= 1 ? 'per-channel' : 'residual';
  },
  inferShape: binaryShape,
};

/** Softmax-like ops normalise across channels: merging cannot pass through them. */
export const barrierRule: OpRule = { role: 'barrier', inferShape: sameShape };
