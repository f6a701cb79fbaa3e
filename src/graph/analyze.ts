/** @file Builds the analysed graph: constants lifted, topological order, shapes, folded shape chains, op roles. */
import { fail, ok, type Result } from '../errors.js';
import { defaultOpset, type Attribute, type Dim, type Model, type Node } from '../onnx/model.js';
import { float32Tensor, int64Tensor, tensorToNumbers, type Tensor } from '../onnx/tensor.js';
import { ruleFor, SUPPORTED_OPS } from './rules/index.js';
import type { OpRole, RuleContext } from './rules/types.js';
import { formatShape, type ValueState } from './value-state.js';

/** A model ready for feature-space analysis and merging. */
export interface AnalyzedGraph {
  /** The normalised model: no Constant nodes, no shape sub-graphs, nodes in topological order. */
  readonly model: Model;
  readonly states: ReadonlyMap<string, ValueState>;
  /** Each node's role, by node name. */
  readonly roles: ReadonlyMap<string, OpRole>;
  /** The node producing each value, by value name. */
  readonly producer: ReadonlyMap<string, Node>;
  /** The nodes reading each value, by value name, in graph order. */
  readonly consumers: ReadonlyMap<string, readonly Node[]>;
}

/** The symbolic name used for a dynamic batch dimension. */
export const BATCH = 'N';

/**
 * Turns Constant nodes into initializers (PyTorch emits them for shape arithmetic), and
 * Identity nodes of an initializer into a second initializer holding the same tensor:
 * PyTorch writes `onnx::Conv_123 = Identity(weight)` when it deduplicates parameters, and
 * every weight rule needs its weight as an initializer.
 */
function liftConstants(model: Model): Result<Model> {
  const initializers = new Map(model.graph.initializers);
  const nodes: Node[] = [];
  for (const node of model.graph.nodes) {
    const aliased = node.opType === 'Identity' ? initializers.get(node.inputs[0] ?? '') : undefined;
    if (aliased !== undefined && node.outputs[0] !== undefined) {
      initializers.set(node.outputs[0], aliased);
      continue;
    }
    if (node.opType !== 'Constant') {
      nodes.push(node);
      continue;
    }
    const value = constantValue(node.attributes);
    if (value === undefined) {
      return fail(
        'unsupported-model',
        `Constant node '${node.name}' has no value zipit can read (sparse or string constants are not supported).`,
      );
    }
    initializers.set(node.outputs[0] ?? node.name, value);
  }
  return ok({ ...model, graph: { ...model.graph, nodes, initializers } });
}

function constantValue(attributes: Readonly<Record<string, Attribute>>): Tensor | undefined {
  const a =
    attributes.value ??
    attributes.value_float ??
    attributes.value_floats ??
    attributes.value_int ??
    attributes.value_ints;
  if (a === undefined) return undefined;
  switch (a.type) {
    case 'tensor':
      return a.value;
    case 'float':
      return float32Tensor([], Float32Array.of(a.value));
    case 'floats':
      return float32Tensor([a.value.length], Float32Array.from(a.value));
    case 'int':
      return int64Tensor([], [a.value]);
    case 'ints':
      return int64Tensor([a.value.length], a.value);
    default:
      return undefined;
  }
}

/**
 * Kahn's algorithm with in-degree counts: each node waits for its distinct unavailable inputs.
 * Among ready nodes the earliest in the file goes first (a min-heap of file positions), which is
 * the order the former scan of the pending list produced, so outputs and goldens are unchanged;
 * the scan was quadratic in the number of nodes.
 */
function topologicalOrder(model: Model): Result<Node[]> {
  const nodes = model.graph.nodes;
  const available = new Set<string>([
    '',
    ...model.graph.inputs.map((i) => i.name),
    ...model.graph.initializers.keys(),
  ]);
  const waiting = new Map<string, number[]>();
  const missingCount = new Array<number>(nodes.length).fill(0);
  const ready = new MinHeap();
  for (const [index, node] of nodes.entries()) {
    for (const input of new Set(node.inputs)) {
      if (available.has(input)) continue;
      missingCount[index] = (missingCount[index] ?? 0) + 1;
      const list = waiting.get(input);
      if (list === undefined) waiting.set(input, [index]);
      else list.push(index);
    }
    if (missingCount[index] === 0) ready.push(index);
  }
  const order: Node[] = [];
  const emitted = new Array<boolean>(nodes.length).fill(false);
  for (let index = ready.pop(); index !== undefined; index = ready.pop()) {
    const node = nodes[index]!;
    order.push(node);
    emitted[index] = true;
    for (const o of node.outputs) {
      if (available.has(o)) continue;
      available.add(o);
      for (const reader of waiting.get(o) ?? []) {
        missingCount[reader] = (missingCount[reader] ?? 0) - 1;
        if (missingCount[reader] === 0) ready.push(reader);
      }
    }
  }
  if (order.length < nodes.length) {
    const stuck = nodes[emitted.indexOf(false)]!;
    const missing = stuck.inputs.find((i) => !available.has(i));
    return fail(
      'unsupported-model',
      `Node '${stuck.name}' (${stuck.opType}) reads '${missing}', which no node, input or initializer provides (or the graph has a cycle).`,
    );
  }
  return ok(order);
}

/** A binary min-heap of node positions (the ready set of {@link topologicalOrder}). */
class MinHeap {
  private readonly items: number[] = [];

  push(value: number): void {
    const items = this.items;
    let i = items.length;
    items.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= value) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && items[right]! < items[left]! ? right : left;
      if (items[child]! >= last) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function initialStates(model: Model): Map<string, ValueState> {
  const states = new Map<string, ValueState>();
  for (const input of model.graph.inputs) {
    // A missing or unnamed first dim is the batch; every other unknown dim stays unknown.
    const shape: Dim[] = (input.shape ?? []).map((d, i) =>
      i === 0 && (d === null || typeof d === 'string') ? BATCH : typeof d === 'string' ? null : d,
    );
    states.set(input.name, { shape });
  }
  for (const [name, tensor] of model.graph.initializers) {
    const integer = tensor.dtype === 'int64' || tensor.dtype === 'int32';
    states.set(name, {
      shape: tensor.dims,
      constant: true,
      ...(integer && tensor.data.length <= 64 ? { known: tensorToNumbers(tensor) } : {}),
    });
  }
  return states;
}

function unsupported(node: Node, position: number, total: number): Result<never> {
  return fail(
    'unsupported-op',
    `Unsupported op '${node.domain ? `${node.domain}.` : ''}${node.opType}' at node '${node.name}' (node ${position + 1} of ${total}); ` +
      `zipit supports ${SUPPORTED_OPS.length} ops (listed in the README).`,
  );
}

/** Replaces computed Reshape targets by constants: symbols must stand where the input has them. */
function foldReshapes(
  order: Node[],
  states: Map<string, ValueState>,
  initializers: Map<string, Tensor>,
): Result<Node[]> {
  const folded: Node[] = [];
  for (const node of order) {
    const target = node.inputs[1];
    if (node.opType !== 'Reshape' || target === undefined || initializers.has(target)) {
      folded.push(node);
      continue;
    }
    const known = states.get(target)?.known;
    const input = states.get(node.inputs[0] ?? '')?.shape ?? [];
    if (known === undefined)
      return fail(
        'unsupported-model',
        `Reshape '${node.name}' has a target shape that is not constant and could not be folded.`,
      );
    const values: number[] = [];
    for (const [i, v] of known.entries()) {
      if (typeof v === 'number') values.push(v);
      else if (input[i] === v)
        values.push(0); // 0 copies the input's dim: the dynamic batch.
      else
        return fail(
          'unsupported-model',
          `Reshape '${node.name}' moves the dynamic dimension '${v}'; zipit cannot fold it.`,
        );
    }
    const name = `${node.name}/folded_shape`;
    initializers.set(name, int64Tensor([values.length], values));
    states.set(name, { shape: [values.length], constant: true, known: values });
    folded.push({ ...node, inputs: [node.inputs[0]!, name] });
  }
  return ok(folded);
}

/** Drops nodes whose outputs nobody reads, and initializers nobody uses. */
function removeDeadCode(
  model: Model,
  order: Node[],
  initializers: Map<string, Tensor>,
): { nodes: Node[]; initializers: Map<string, Tensor> } {
  const needed = new Set(model.graph.outputs.map((o) => o.name));
  const kept: Node[] = [];
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const input of node.inputs) needed.add(input);
  }
  kept.reverse();
  const usedInitializers = new Map([...initializers].filter(([name]) => needed.has(name)));
  return { nodes: kept, initializers: usedInitializers };
}

/**
 * Normalises and analyses a model: every node must be a supported op with inferable shapes.
 * Fails with 'unsupported-op' naming the first unsupported node and its position.
 */
export function analyzeGraph(source: Model): Result<AnalyzedGraph> {
  const lifted = liftConstants(source);
  if (!lifted.ok) return lifted;
  const sorted = topologicalOrder(lifted.value);
  if (!sorted.ok) return sorted;
  const states = initialStates(lifted.value);
  const opset = defaultOpset(lifted.value);
  const initializers = new Map(lifted.value.graph.initializers);
  const roles = new Map<string, OpRole>();
  for (const [position, node] of sorted.value.entries()) {
    const rule = ruleFor(node.opType, node.domain);
    if (rule === undefined) return unsupported(node, position, sorted.value.length);
    const ctx: RuleContext = {
      node,
      inputs: node.inputs.map((i) => (i === '' ? undefined : states.get(i))),
      initializer: (name) => initializers.get(name),
      opset,
    };
    const inferred = rule.inferShape(ctx);
    if (!inferred.ok) return inferred;
    for (const [i, output] of node.outputs.entries()) {
      const state = inferred.value[i];
      if (state !== undefined && output !== '') states.set(output, state);
    }
    roles.set(node.name, typeof rule.role === 'function' ? rule.role(ctx) : rule.role);
  }
  const folded = foldReshapes(sorted.value, states, initializers);
  if (!folded.ok) return folded;
  const live = removeDeadCode(lifted.value, folded.value, initializers);
  const model: Model = {
    ...lifted.value,
    graph: { ...lifted.value.graph, nodes: live.nodes, initializers: live.initializers },
  };
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const node of live.nodes) {
    for (const o of node.outputs) producer.set(o, node);
    for (const i of node.inputs) {
      if (i === '') continue;
      const list = consumers.get(i) ?? [];
      list.push(node);
      consumers.set(i, list);
    }
  }
  for (const output of model.graph.outputs) {
    if (!states.has(output.name))
      return fail(
        'unsupported-model',
        `Graph output '${output.name}' is not produced by any node.`,
      );
  }
  return ok({ model, states, roles, producer, consumers });
}

/** One line describing a value's shape, for messages. */
export function describeValue(graph: AnalyzedGraph, name: string): string {
  const state = graph.states.get(name);
  return state ? `${name} ${formatShape(state.shape)}` : name;
}
