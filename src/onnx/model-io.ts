/** @file A model's input and output conventions: the image shape and batch its input fixes, the outputs that are scored. */
import type { Model } from './model.js';
import { METADATA_KEYS } from './preprocessing.js';

/** The C x H x W a model's first input expects, when static. */
export function modelImageShape(
  model: Model,
): { channels: number; height: number; width: number } | undefined {
  const shape = model.graph.inputs[0]?.shape;
  if (shape === undefined || shape.length !== 4) return undefined;
  const [, c, h, w] = shape;
  if (typeof c !== 'number' || typeof h !== 'number' || typeof w !== 'number') return undefined;
  return { channels: c, height: h, width: w };
}

/** The batch size a model's input fixes (an export without a dynamic batch axis), if any. */
export function staticBatch(model: Model): number | undefined {
  const first = model.graph.inputs[0]?.shape?.[0];
  return typeof first === 'number' && first > 0 ? first : undefined;
}

/** Metadata entry listing the outputs to score (a multi-head model's heads). */
export function scoreOutputsMetadata(names: readonly string[]): Record<string, string> {
  return { [METADATA_KEYS.scoreOutputs]: names.join(',') };
}

/**
 * The outputs of a model that are scored: a multi-head model lists them (its heads; its combined
 * output is for users), any other model scores all its graph outputs.
 */
export function scoredOutputs(model: Model): string[] {
  const scored = model.metadata[METADATA_KEYS.scoreOutputs]
    ?.split(',')
    .filter((name) => name !== '');
  return scored && scored.length > 0 ? scored : model.graph.outputs.map((o) => o.name);
}
