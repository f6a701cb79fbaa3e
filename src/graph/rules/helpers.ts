/** @file Small helpers shared by op rules. */
import { fail, type Result } from '../../errors.js';
import type { Node } from '../../onnx/model.js';
import type { ValueState } from '../value-state.js';
import type { RuleContext } from './types.js';

/** The state of input `i`, or a Failure naming the node. */
export function inputState(ctx: RuleContext, i: number): Result<ValueState> {
  const state = ctx.inputs[i];
  if (state === undefined) {
    return fail(
      'bad-shape',
      `Node '${ctx.node.name}' (${ctx.node.opType}): the shape of input ${i} ('${ctx.node.inputs[i] ?? ''}') is unknown.`,
    );
  }
  return { ok: true, value: state };
}

/** A Failure naming the node and what was expected. */
export function shapeFailure(node: Node, what: string): Result<never> {
  return fail('bad-shape', `Node '${node.name}' (${node.opType}): ${what}`);
}

/** True when input `i` is a weight or computed only from weights. */
export function isConstantInput(ctx: RuleContext, i: number): boolean {
  const name = ctx.node.inputs[i];
  if (name === undefined || name === '') return false;
  return ctx.initializer(name) !== undefined || ctx.inputs[i]?.constant === true;
}

/** Normalises a possibly negative axis for a given rank. */
export function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}
