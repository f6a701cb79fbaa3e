/** @file Zip propagation: W* = sum_k M_k(out) W_k U_k(in) for every weight, p* = sum_k M_k p_k for per-channel parameters. */
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { ParamBinding, SpaceAnalysis } from '../graph/spaces.js';
import type { Model } from '../onnx/model.js';
import type { Tensor } from '../onnx/tensor.js';
import type { InitializerMaps } from './structure.js';
import { applyAlongAxis, identityTransform, type SpaceTransform } from './transform.js';

/**
 * Applies per-space transforms to K models of one structure and returns the merged model
 * (model 0's graph with merged initializers). A space without a transform is fixed (M_k = I/K,
 * U_k = I). Initializers with no binding (scalars, shape constants) are averaged when float and
 * taken from model 0 otherwise (the structure check guarantees their shapes agree).
 */
export function applyTransforms(
  graphs: readonly AnalyzedGraph[],
  maps: InitializerMaps,
  analysis: SpaceAnalysis,
  transforms: ReadonlyMap<number, SpaceTransform>,
): Model {
  const numModels = graphs.length;
  const reference = graphs[0]!.model;
  const transformOf = (space: number): SpaceTransform =>
    transforms.get(space) ?? identityTransform(numModels, analysis.spaces[space]!.width);
  const byInitializer = new Map<string, ParamBinding[]>();
  for (const binding of analysis.bindings) {
    const list = byInitializer.get(binding.initializer) ?? [];
    list.push(binding);
    byInitializer.set(binding.initializer, list);
  }
  const initializers = new Map<string, Tensor>();
  for (const [name, refTensor] of reference.graph.initializers) {
    const bindings = byInitializer.get(name) ?? [];
    if (refTensor.dtype !== 'float32') {
      initializers.set(name, refTensor);
      continue;
    }
    let sum: Float32Array | undefined;
    let dims: readonly number[] = refTensor.dims;
    for (let k = 0; k < numModels; k++) {
      let tensor = graphs[k]!.model.graph.initializers.get(
        maps[k]!.get(name) ?? name,
      ) as Tensor<'float32'>;
      for (const binding of bindings) {
        const perSegment = binding.segments.map((s) => {
          const t = transformOf(s.space);
          return binding.role === 'rows' ? t.rows[k]! : t.columns[k]!;
        });
        tensor = applyAlongAxis(tensor, binding.axis, binding.segments, perSegment);
      }
      // Unbound parameters (shared scalars) are averaged; bound ones are summed since M_k already averages.
      const scale = bindings.some((b) => b.role === 'rows') ? 1 : 1 / numModels;
      sum ??= new Float32Array(tensor.data.length);
      for (let i = 0; i < sum.length; i++) sum[i]! += scale * tensor.data[i]!;
      dims = tensor.dims;
    }
    initializers.set(name, { dtype: 'float32', dims, data: sum! });
  }
  const outputs = reference.graph.outputs.map((o) => ({
    name: o.name,
    elemType: o.elemType,
    ...(o.shape ? { shape: o.shape } : {}),
  }));
  return { ...reference, graph: { ...reference.graph, initializers, outputs, valueInfo: [] } };
}
