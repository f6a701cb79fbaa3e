/** @file Partial zipping: a merged trunk up to a stop point, then one head per source model reading U_k f*. */
import type { AnalyzedGraph } from '../graph/analyze.js';
import { gemmWeightAxes } from '../graph/rules/gemm.js';
import { GraphBuilder } from '../onnx/builder.js';
import type { Dim, Model, Node, ValueInfo } from '../onnx/model.js';
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

/** The name a node, value or weight of source model k takes in its head of the multi-head model. */
export function headName(k: number, name: string): string {
  return `h${k}/${name}`;
}

/** The axis of a weight op's weight (of dims `dims`) that its input channels live on. */
function columnsAxis(node: Node, dims: readonly number[]): number {
  if (node.opType === 'Gemm') return gemmWeightAxes(node, dims).inputAxis;
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
  const b = new GraphBuilder(trunk.graph.name);
  for (const node of trunk.graph.nodes.slice(0, stop.position + 1)) {
    for (const input of node.inputs) {
      const tensor = trunk.graph.initializers.get(input);
      // An initializer several trunk nodes read is added once, under its own name.
      if (tensor !== undefined && !b.hasWeight(input)) b.weight(input, tensor);
    }
    b.append(node);
  }
  const heads: Head[] = [];
  const tags = labels.map(tag).map((t, k, all) => (all.indexOf(t) !== k ? `${t}_${k}` : t));
  for (const [k, source] of sources.entries())
    heads.push(...addHead(b, source, k, tags[k]!, valueMaps[k]!, stop, unmerge[k]!));
  const original = trunk.graph.outputs[0]!;
  const combinedLabels = addCombinedOutput(b, heads, original);
  for (const head of heads) b.output(head.name, head.shape, head.elemType);
  b.output(original.name, undefined, original.elemType);
  return {
    ...b.buildInto(trunk),
    metadata: {
      ...trunk.metadata,
      ...classLabelsMetadata([...heads.map((h) => h.labels), combinedLabels]),
      ...scoreOutputsMetadata(heads.map((h) => h.name)),
      'zipit.stop_at': `${stop.id} (${stop.zipped}/${stop.total})`,
    },
  };
}

/** One head's graph output: its name, type, and the class label of each logit. */
interface Head {
  readonly name: string;
  readonly elemType: number;
  readonly shape: readonly Dim[] | undefined;
  readonly labels: number[];
}

/**
 * Adds source model k's nodes after the cut, renamed by {@link headName}, reading U_k f*: folded into
 * the columns of its first weight ops when they all read the cut value as their data input,
 * else through a Gather along channels. Returns its outputs, each copied to `{output}_{tag}`.
 */
function addHead(
  b: GraphBuilder,
  source: AnalyzedGraph,
  k: number,
  tag: string,
  valueMap: ReadonlyMap<string, string>,
  stop: StopPoint,
  unmerge: ChannelMap,
): Head[] {
  const cut = valueMap.get(stop.value) ?? stop.value;
  const headNodes = source.model.graph.nodes.slice(stop.position + 1);
  const own = source.model.graph.initializers;
  const rename = (name: string): string =>
    name === '' ? '' : name === cut ? stop.value : headName(k, name);
  const readers = headNodes.filter((n) => n.inputs.includes(cut));
  // A MatMul folds only with a weight (attention's MatMul of two activations does not).
  const fold = readers.every(
    (n) =>
      WEIGHT_OPS.has(n.opType) &&
      n.inputs[0] === cut &&
      !n.inputs.slice(1).includes(cut) &&
      (n.opType !== 'MatMul' || own.get(n.inputs[1] ?? '')?.dims.length === 2),
  );
  let unmerged = stop.value;
  if (!fold) {
    // U_k f*: model k's channel j reads merged channel c(j).
    const index = new Array<number>(unmerge.inWidth).fill(0);
    for (let e = 0; e < unmerge.out.length; e++) index[unmerge.in[e]!] = unmerge.out[e]!;
    const indices = b.weight(headName(k, 'unmerge_indices'), int64Tensor([index.length], index));
    unmerged = b.node(
      'Gather',
      [stop.value, indices],
      { axis: stop.axis },
      { name: headName(k, 'unmerge'), outputs: [headName(k, 'unmerged')] },
    )[0]!;
  }
  // The builder's name of each of the source's initializers (folded ones apart): the same
  // initializer read twice is added once.
  const weights = new Map<string, string>();
  for (const node of headNodes) {
    const inputs = node.inputs.map((input, i) => {
      if (input === cut) return unmerged;
      const tensor = own.get(input);
      if (tensor === undefined) return rename(input);
      const folded = fold && i === 1 && node.inputs[0] === cut && tensor.dtype === 'float32';
      const key = folded ? `folded ${input}` : input;
      const known = weights.get(key);
      if (known !== undefined) return known;
      const name = b.weight(
        rename(input),
        folded
          ? applyAlongAxis(
              tensor as Tensor<'float32'>,
              columnsAxis(node, tensor.dims),
              [{ space: stop.space, width: unmerge.outWidth, repeat: 1 }],
              [unmerge],
            )
          : tensor,
      );
      weights.set(key, name);
      return name;
    });
    b.append({
      ...node,
      name: headName(k, node.name),
      inputs,
      outputs: node.outputs.map(rename),
    });
  }
  const stored = storedClassLabels(source.model);
  return source.model.graph.outputs.map((output, o) => {
    const name = `${output.name}_${tag}`;
    b.node(
      'Identity',
      [rename(output.name)],
      {},
      { name: headName(k, `output_${o}`), outputs: [name] },
    );
    const width = source.states.get(output.name)?.shape[1];
    return {
      name,
      elemType: output.elemType,
      shape: output.shape,
      labels:
        stored?.[o] ?? Array.from({ length: typeof width === 'number' ? width : 0 }, (_, i) => i),
    };
  });
}

/**
 * Adds the combined output under the original output's name, what a user of the single merged
 * model reads: the mean of the heads when they score the same classes, else their
 * concatenation. Returns its class labels.
 */
function addCombinedOutput(b: GraphBuilder, heads: readonly Head[], original: ValueInfo): number[] {
  const sameLabels = heads.every(
    (h) => JSON.stringify(h.labels) === JSON.stringify(heads[0]!.labels),
  );
  if (!sameLabels) {
    b.node(
      'Concat',
      heads.map((h) => h.name),
      { axis: 1 },
      { name: 'combined/concat', outputs: [original.name] },
    );
    return heads.flatMap((h) => h.labels);
  }
  const sum = heads
    .slice(1)
    .reduce((acc, h, i) => b.op('Add', [acc, h.name], {}, `combined/sum_${i}`), heads[0]!.name);
  const count = b.weight('combined/count', {
    dtype: 'float32',
    dims: [],
    data: Float32Array.of(heads.length),
  });
  b.node('Div', [sum, count], {}, { name: 'combined/mean', outputs: [original.name] });
  return heads[0]!.labels;
}
