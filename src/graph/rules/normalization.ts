/** @file BatchNormalization and LayerNormalization: per-channel ops that own parameters. */
import { ok, type Result } from '../../errors.js';
import type { ValueState } from '../value-state.js';
import { inputState } from './helpers.js';
import type { OpRule, RuleContext } from './types.js';

function normShape(ctx: RuleContext): Result<ValueState[]> {
  const x = inputState(ctx, 0);
  if (!x.ok) return x;
  // Training-mode BN outputs (running mean/var) are per-channel vectors; inference has one output.
  const channels = x.value.shape[1] ?? null;
  return ok(ctx.node.outputs.map((_, i) => ({ shape: i === 0 ? x.value.shape : [channels] })));
}

/** BatchNormalization (all opsets: `spatial` (< 9) and `training_mode` (>= 14) need no change here). */
export const batchNormRule: OpRule = { role: 'per-channel', inferShape: normShape };
/** LayerNormalization over the last axis (channels last). */
export const layerNormRule: OpRule = { role: 'per-channel', inferShape: normShape };
