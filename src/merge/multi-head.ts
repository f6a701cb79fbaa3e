/** @file Partial zipping: a merged trunk up to a stop point, then one head per source model reading U_k f*. */
import type { AnalyzedGraph } from '../graph/analyze.js';
import type { Model, Node, ValueInfo } from '../onnx/model.js';
import { scoreOutputsMetadata } from '../onnx/model-io.js';
import { classLabelsMetadata, storedClassLabels } from '../onnx/preprocessing.js';
import { int64Tensor, type Tensor } from '../onnx/tensor.js';
import type { StopPoint } from './stop-points.js';
import { applyAlongAxis, type ChannelMap } from './transform.js';

/** A name safe for ONNX value names and output names. */
function tag(label: string): string {
  const base = label.replace(/^.*[\\/]/, '').replace(/\.onnx$/i, '');
  return base.replace(/[^A-Za-z0-9_]/g, '_') || 'model';
}

const WEIGHT_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/** The axis of a weight op's weight that its input channels live on. */
function columnsAxis(node: Node): number {
  if (node.opType === 'Gemm') {
    const transB = node.attributes.transB;
    return transB?.type === 'int' && transB.value === 1 ? 1 : 0;
  }
  return node.opType === 'MatMul' ? 0 : 1;
}

/**
 * Builds the multi-head model. `trunk` is the merged model (model 0's graph with merged weights);
 * nodes 0..stop.position form the shared trunk. Each source model k contributes its own nodes
 * after the cut, renamed under `h{k}/`, reading U_k f*: folded into the columns of its first
 * weight ops when they read the cut value directly, else through a Gather along channels.
 * Outputs: every head's outputs (named after its source) and a combined output under the
 * original name (the mean of the heads when they score the same classes, else their concatenation).
 */
export function buildMultiHead(
  trunk: Model,
  sources: readonly AnalyzedGraph[],
  labels: readonly string[],
  valueMaps: readonly ReadonlyMap<string, string>[],
  stop: StopPoint,
  unmerge: readonly ChannelMap[],
): Model {
  const trunkNodes = trunk.graph.nodes.slice(0, stop.position + 1);
  const initializers = new Map<string, Tensor>();
  for (const node of trunkNodes) {
    for (const input of node.inputs) {
      const tensor = trunk.graph.initializers.get(input);
      if (tensor !== undefined) initializers.set(input, tensor);
    }
  }
  const nodes: Node[] = [...trunkNodes];
  const headOutputs: ValueInfo[] = [];
  const headLabels: number[][] = [];
  const tags = labels.map(tag).map((t, k, all) => (all.indexOf(t) !== k ? `${t}_${k}` : t));
  for (const [k, source] of sources.entries()) {
    const prefix = `h${k}/`;
    const cut = valueMaps[k]!.get(stop.value) ?? stop.value;
    const headNodes = source.model.graph.nodes.slice(stop.position + 1);
    const own = source.model.graph.initializers;
    const rename = (name: string): string =>
      name === '' ? '' : name === cut ? stop.value : `${prefix}${name}`;
    const readers = headNodes.filter((n) => n.inputs.includes(cut));
    const fold = readers.every(
      (n) => WEIGHT_OPS.has(n.opType) && n.inputs[0] === cut && !n.inputs.slice(1).includes(cut),
    );
    let unmerged = stop.value;
    if (!fold) {
      // U_k f*: model k's channel j reads merged channel c(j).
      const index = new Array<number>(unmerge[k]!.inWidth).fill(0);
      for (let e = 0; e < unmerge[k]!.out.length; e++)
        index[unmerge[k]!.in[e]!] = unmerge[k]!.out[e]!;
      const indices = `${prefix}unmerge_indices`;
      initializers.set(indices, int64Tensor([index.length], index));
      unmerged = `${prefix}unmerged`;
      nodes.push({
        name: `${prefix}unmerge`,
        opType: 'Gather',
        domain: '',
        inputs: [stop.value, indices],
        outputs: [unmerged],
        attributes: { axis: { type: 'int', value: 1 } },
      });
    }
    for (const node of headNodes) {
      const inputs = node.inputs.map((input) => (input === cut ? unmerged : rename(input)));
      for (const [i, input] of node.inputs.entries()) {
        const tensor = own.get(input);
        if (tensor === undefined) continue;
        const folded = fold && i === 1 && node.inputs[0] === cut && tensor.dtype === 'float32';
        initializers.set(
          inputs[i]!,
          folded
            ? applyAlongAxis(
                tensor as Tensor<'float32'>,
                columnsAxis(node),
                [{ space: stop.space, width: unmerge[k]!.outWidth, repeat: 1 }],
                [unmerge[k]!],
              )
            : tensor,
        );
      }
      nodes.push({
        ...node,
        name: `${prefix}${node.name}`,
        inputs,
        outputs: node.outputs.map(rename),
      });
    }
    const stored = storedClassLabels(source.model);
    for (const [o, output] of source.model.graph.outputs.entries()) {
      const name = `${output.name}_${tags[k]}`;
      nodes.push({
        name: `${prefix}output_${o}`,
        opType: 'Identity',
        domain: '',
        inputs: [rename(output.name)],
        outputs: [name],
        attributes: {},
      });
      headOutputs.push({
        name,
        elemType: output.elemType,
        ...(output.shape ? { shape: output.shape } : {}),
      });
      const width = source.states.get(output.name)?.shape[1];
      headLabels.push(
        stored?.[o] ?? Array.from({ length: typeof width === 'number' ? width : 0 }, (_, i) => i),
      );
    }
  }
  // The combined output under the original name: what a user of the single merged model reads.
  const original = trunk.graph.outputs[0]!;
  const sameLabels = headLabels.every((l) => JSON.stringify(l) === JSON.stringify(headLabels[0]));
  let combinedLabels: number[];
  if (sameLabels) {
    const sum = headOutputs.slice(1).reduce((acc, o, i) => {
      const name = `combined/sum_${i}`;
      nodes.push({
        name,
        opType: 'Add',
        domain: '',
        inputs: [acc, o.name],
        outputs: [name],
        attributes: {},
      });
      return name;
    }, headOutputs[0]!.name);
    initializers.set('combined/count', {
      dtype: 'float32',
      dims: [],
      data: Float32Array.of(headOutputs.length),
    });
    nodes.push({
      name: 'combined/mean',
      opType: 'Div',
      domain: '',
      inputs: [sum, 'combined/count'],
      outputs: [original.name],
      attributes: {},
    });
    combinedLabels = headLabels[0]!;
  } else {
    nodes.push({
      name: 'combined/concat',
      opType: 'Concat',
      domain: '',
      inputs: headOutputs.map((o) => o.name),
      outputs: [original.name],
      attributes: { axis: { type: 'int', value: 1 } },
    });
    combinedLabels = headLabels.flat();
  }
  return {
    ...trunk,
    metadata: {
      ...trunk.metadata,
      ...classLabelsMetadata([...headLabels, combinedLabels]),
      ...scoreOutputsMetadata(headOutputs.map((o) => o.name)),
      'zipit.stop_at': `${stop.id} (${stop.zipped}/${stop.total})`,
    },
    graph: {
      ...trunk.graph,
      nodes,
      initializers,
      outputs: [...headOutputs, { name: original.name, elemType: original.elemType }],
      valueInfo: [],
    },
  };
}
