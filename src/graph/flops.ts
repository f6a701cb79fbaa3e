/** @file Multiply-accumulates per image, counted from the analysed graph's weight ops. */
import type { Node } from '../onnx/model.js';
import type { AnalyzedGraph } from './analyze.js';
import { gemmWeightAxes } from './rules/gemm.js';
import { staticSize } from './value-state.js';

/**
 * MACs of one image's forward pass: Conv (output elements x input channels per group x kernel
 * area), Gemm and MatMul (rows x inputs x outputs). Element-wise ops, pooling and normalisation
 * are not counted, as is usual for CNN FLOP tables.
 */
export function countMacs(graph: AnalyzedGraph): number {
  let total = 0;
  for (const node of graph.model.graph.nodes) total += nodeMacs(graph, node);
  return total;
}

/**
 * MACs of one node of the analysed graph for one image (0 for ops that are not counted), so
 * callers can sum any prefix of the graph in one pass (stop points need every prefix).
 */
export function nodeMacs(graph: AnalyzedGraph, node: Node): number {
  const weight = graph.model.graph.initializers.get(node.inputs[1] ?? '');
  const out = graph.states.get(node.outputs[0] ?? '')?.shape;
  if (out === undefined) return 0;
  const perImage = staticSize(out.slice(1)) ?? 0;
  if (weight === undefined) {
    // MatMul of two activations (attention's scores and their use): each output sums K products.
    if (node.opType !== 'MatMul') return 0;
    const a = graph.states.get(node.inputs[0] ?? '')?.shape ?? [];
    const inner = a[a.length - 1];
    return typeof inner === 'number' ? perImage * inner : 0;
  }
  if (node.opType === 'Conv') {
    const [, inPerGroup, ...kernel] = weight.dims;
    return perImage * (inPerGroup ?? 1) * kernel.reduce((a, b) => a * b, 1);
  }
  if (node.opType === 'Gemm') return perImage * gemmWeightAxes(node, weight.dims).inputs;
  if (node.opType === 'MatMul') return perImage * weight.dims[0]!;
  return 0;
}
