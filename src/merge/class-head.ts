/**
 * @file Class-aware heads: in a full merge, the merged classifier's output class j is built only
 * from the rows of the models trained on class j.
 *
 * The paper (and the reference) average every parameter, the classifier included, so class j's
 * logit is the mean of the models' rows for j: the row of a model never trained on j (pushed
 * down during training, since its targets never were j) halves and biases the row of the model
 * that knows j. Knowing which model was trained on which classes (`--tasks`, or the models'
 * `zipit.trained_classes` metadata), the merged row j is instead the mean of the rows of the
 * models trained on j, unmerged into the merged feature space as every other weight is. A class
 * no model (or every model) was trained on keeps the plain mean.
 */
import type { SpaceAnalysis } from '../graph/spaces.js';
import type { Model } from '../onnx/model.js';
import { transformFromGroups, type SpaceTransform } from './transform.js';

/** How a full merge built the classifier's rows: per class from its models, or the paper's mean. */
export type AppliedHead = 'class-aware' | 'average';

/** The rule asked for: one of those, or 'auto' (class-aware when the trained classes are known, else average). */
export type HeadRule = AppliedHead | 'auto';

export const HEAD_RULES: readonly HeadRule[] = ['auto', 'class-aware', 'average'];

/**
 * The transform of the graph output's space that makes output class j the mean of the rows of
 * the models in `trained` that hold j: M_k has weight 1/|{k : j in trained[k]}| on row j for
 * each such model and 0 for the others. Undefined when the model has not exactly one output,
 * the output's channels are not one space, or no class is trained by only some of the models
 * (then the rule changes nothing).
 */
export function classAwareHead(
  reference: Model,
  analysis: SpaceAnalysis,
  trained: readonly (readonly number[])[],
): { readonly space: number; readonly transform: SpaceTransform } | undefined {
  const outputs = reference.graph.outputs;
  if (outputs.length !== 1) return undefined;
  const layout = analysis.layouts.get(outputs[0]!.name);
  if (layout === undefined || layout.segments.length !== 1) return undefined;
  const segment = layout.segments[0]!;
  if (segment.repeat !== 1) return undefined;
  const width = segment.width;
  const numModels = trained.length;
  const sets = trained.map((classes) => new Set(classes));
  let changes = false;
  const groups = Array.from({ length: width }, (_, j) => {
    const holders = sets.flatMap((set, k) => (set.has(j) ? [k] : []));
    const models = holders.length === 0 ? sets.map((_, k) => k) : holders;
    if (models.length !== numModels) changes = true;
    return models.map((k) => k * width + j);
  });
  if (!changes) return undefined;
  const rows = transformFromGroups(groups, numModels, width).rows;
  // Nothing reads the logits' channels through a weight, but keep U_k = I so a consumer would
  // see every model's class j at merged channel j.
  const everyModel = Array.from({ length: width }, (_, j) =>
    Array.from({ length: numModels }, (__, k) => k * width + j),
  );
  const columns = transformFromGroups(everyModel, numModels, width).columns;
  return { space: segment.space, transform: { mergedWidth: width, rows, columns } };
}
