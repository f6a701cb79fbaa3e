/** @file Multiply-accumulates per image, counted from the analysed graph's weight ops. */
import { intAttr } from './attributes.js';
import type { AnalyzedGraph } from './analyze.js';
import { staticSize } from './value-state.js';

/**
 * MACs of one image's forward pass: Conv (output elements x input channels per group x kernel
 * area), Gemm and MatMul (rows x inputs x outputs). Element-wise ops, pooling and normalisation
 * are not counted, as is usual for CNN FLOP tables.
 */
export function countMacs(graph: AnalyzedGraph): number {
  let total = 0;
  for (const node of graph.model.graph.nodes) {
    const weight = graph.model.graph.initializers.get(node.inputs[1] ?? '');
    const out = graph.states.get(node.outputs[0] ?? '')?.shape;
    if (weight === undefined || out === undefined) continue;
    const perImage = staticSize(out.slice(1)) ?? 0;
    if (node.opType === 'Conv') {
      const [, inPerGroup, ...kernel] = weight.dims;
      total += perImage * (inPerGroup ?? 1) * kernel.reduce((a, b) => a * b, 1);
    } else if (node.opType === 'Gemm') {
      const inner = intAttr(node, 'transB', 0) === 1 ? weight.dims[1]! : weight.dims[0]!;
      total += perImage * inner;
    } else if (node.opType === 'MatMul') {
      total += perImage * weight.dims[0]!;
    }
  }
  return total;
}
