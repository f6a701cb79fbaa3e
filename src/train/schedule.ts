/** @file Learning-rate schedules: a linear warm-up, then linear or cosine decay to zero. */

/**
 * The learning rate of step `step` (0-based) of `totalSteps`: linear warm-up over the first
 * `warmupSteps` (it keeps the first updates of a freshly initialised BN network from
 * overshooting), then half a cosine from `peak` down to 0 at the last step.
 */
export function cosineLearningRate(
  step: number,
  totalSteps: number,
  peak: number,
  warmupSteps: number,
): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return 0.5 * peak * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** Warm-up length used by the trainer: 3% of the run, at most 200 steps. */
export function defaultWarmupSteps(totalSteps: number): number {
  return Math.min(200, Math.ceil(0.03 * totalSteps));
}

/** The shape of the decay after the warm-up. */
export type Schedule = 'linear' | 'cosine';

/**
 * The learning rate of step `step` of `totalSteps` under `schedule`: a linear warm-up over
 * `warmupSteps`, then a linear ramp (or half a cosine) from `peak` down to 0 at the last step.
 */
export function learningRateAt(
  schedule: Schedule,
  step: number,
  totalSteps: number,
  peak: number,
  warmupSteps: number,
): number {
  if (schedule === 'cosine') return cosineLearningRate(step, totalSteps, peak, warmupSteps);
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const remaining = Math.max(0, totalSteps - 1 - step) / Math.max(1, totalSteps - 1 - warmupSteps);
  return peak * Math.min(1, remaining);
}

/**
 * Warm-up length of `schedule`: 15% of the run for 'linear' (the recipe of the reference's
 * models, whose pairs merge), 3% (at most 200 steps) for 'cosine'.
 */
export function warmupStepsOf(schedule: Schedule, totalSteps: number): number {
  return schedule === 'linear' ? Math.ceil(0.15 * totalSteps) : defaultWarmupSteps(totalSteps);
}
