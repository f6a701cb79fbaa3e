/** @file Learning-rate schedule: a short linear warm-up, then cosine decay to zero. */

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
