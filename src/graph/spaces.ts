/** @file Feature-space analysis: union of channel axes derived from the graph, with no per-architecture code. */
import { fail, ok, type Result } from '../errors.js';
import type { Node } from '../onnx/model.js';
import type { AnalyzedGraph } from './analyze.js';
import { gemmWeightAxes } from './rules/gemm.js';
import { staticSize } from './value-state.js';

/** `width` channels of space `space`, each repeated `repeat` times consecutively (a flatten of h x w gives h*w). */
export interface Segment {
  readonly space: number;
  readonly width: number;
  readonly repeat: number;
}

/** How a value's channel axis is made of spaces: one segment, or several after a channel Concat. */
export interface ChannelLayout {
  /** The channel axis of the value (1 for NCHW and [N, C]; the last axis after MatMul). */
  readonly axis: number;
  readonly segments: readonly Segment[];
}

/**
 * How an initializer is transformed by a merge: along `axis`, `rows` applies each segment's merge
 * matrix M_k (the parameter lives on that space, e.g. output channels, biases, BN statistics);
 * `columns` applies each segment's unmerge U_k (input channels of a consumer).
 */
export interface ParamBinding {
  readonly initializer: string;
  readonly axis: number;
  readonly role: 'rows' | 'columns';
  readonly segments: readonly Segment[];
}

/** Kinds of space as `zipit inspect` prints them. */
export type SpaceKind = 'plain' | 'residual' | 'fixed';

/** One feature space: channels that must be transformed together. */
export interface FeatureSpace {
  /** Position in graph order (by first producer); what `--stop-at` and the stats file use. */
  readonly id: number;
  readonly width: number;
  readonly kind: SpaceKind;
  /** Why a fixed space is fixed: the graph input, a graph output, or an op merging cannot pass. */
  readonly fixedBy?: string;
  /** Nodes writing the space (weight ops) and reading it (weight ops' input channels). */
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  /** Per-channel parameters on the space (BN, LN, biases, per-channel constants). */
  readonly parameters: readonly string[];
  /** Where activations are measured: value name and the channel offset of the space in it. */
  readonly site?: { readonly value: string; readonly offset: number };
  /** Values carrying exactly this space on their channel axis (for REPAIR and partial zipping). */
  readonly producerOutputs: readonly string[];
}

/** A channel concatenation: its output is the direct sum of its inputs' spaces. */
export interface ConcatSpace {
  readonly node: string;
  readonly value: string;
  readonly parts: readonly number[];
}

/** The result of the analysis for one model. */
export interface SpaceAnalysis {
  readonly spaces: readonly FeatureSpace[];
  readonly concats: readonly ConcatSpace[];
  readonly bindings: readonly ParamBinding[];
  /** Layout of every activation value (by name) whose channels are spaces. */
  readonly layouts: ReadonlyMap<string, ChannelLayout>;
}

class UnionFind {
  private readonly parent: number[] = [];
  add(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }
  find(x: number): number {
    let root = x;
    while (this.parent[root] !== root) root = this.parent[root]!;
    while (this.parent[x] !== root) {
      const next = this.parent[x]!;
      this.parent[x] = root;
      x = next;
    }
    return root;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    // Keep the older (smaller) root so a space is named by its first appearance.
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}

interface RawSpace {
  width: number;
  producers: string[];
  consumers: string[];
  parameters: string[];
  siteCandidates: { value: string; offset: number; order: number }[];
  producerOutputs: string[];
  fixedBy?: string;
  order: number;
}

/** Where a parameter tensor's channel axis is, given the activation's channel axis and rank (numpy broadcast). */
function broadcastAxis(
  paramDims: readonly number[],
  activationRank: number,
  channelAxis: number,
  width: number,
): number | undefined {
  const axis = channelAxis - (activationRank - paramDims.length);
  if (axis < 0 || axis >= paramDims.length) return undefined;
  if (paramDims[axis] === 1 && width !== 1) return undefined;
  return paramDims[axis] === width ? axis : undefined;
}

/**
 * Derives the feature spaces of an analysed graph (ALGORITHM.md "Feature spaces"):
 * weight ops open spaces, per-channel ops carry them, residual Adds tie them, Concats stack
 * them, flattens repeat them; the graph input and outputs are fixed.
 */
export function analyzeSpaces(graph: AnalyzedGraph): Result<SpaceAnalysis> {
  const uf = new UnionFind();
  const raw: RawSpace[] = [];
  const layouts = new Map<string, ChannelLayout>();
  const bindings: ParamBinding[] = [];
  const concats: { node: string; value: string; parts: Segment[] }[] = [];
  const nodeOrder = new Map(graph.model.graph.nodes.map((n, i) => [n.name, i]));
  const order = (node: Node): number => nodeOrder.get(node.name) ?? 0;

  const newSpace = (width: number, position: number, fixedBy?: string): number => {
    const id = uf.add();
    raw.push({
      width,
      producers: [],
      consumers: [],
      parameters: [],
      siteCandidates: [],
      producerOutputs: [],
      order: position,
      ...(fixedBy ? { fixedBy } : {}),
    });
    return id;
  };
  const fix = (layout: ChannelLayout | undefined, reason: string): void => {
    for (const s of layout?.segments ?? []) {
      const space = raw[uf.find(s.space)]!;
      space.fixedBy ??= reason;
    }
  };
  const shapeOf = (value: string) => graph.states.get(value)?.shape ?? [];
  const isInitializer = (value: string) => graph.model.graph.initializers.has(value);
  // The value to measure a consumer's input at: before any flatten, so channels keep their axis.
  const siteOf = (value: string): string => {
    const producer = graph.producer.get(value);
    if (producer && graph.roles.get(producer.name) === 'flatten')
      return siteOf(producer.inputs[0]!);
    return value;
  };

  for (const input of graph.model.graph.inputs) {
    const channels = shapeOf(input.name)[1];
    const width = typeof channels === 'number' ? channels : 0;
    const space = newSpace(width, -1, `graph input '${input.name}'`);
    layouts.set(input.name, { axis: 1, segments: [{ space, width, repeat: 1 }] });
  }

  for (const node of graph.model.graph.nodes) {
    const role = graph.roles.get(node.name);
    const x = node.inputs[0] ?? '';
    const inLayout = layouts.get(x);
    const out = node.outputs[0] ?? '';
    const outShape = shapeOf(out);
    switch (role) {
      case 'weight': {
        const weight = graph.model.graph.initializers.get(node.inputs[1] ?? '')!;
        let rowsAxis = 0;
        let columnsAxis = 1;
        let channelAxis = 1;
        if (node.opType === 'Gemm') {
          const axes = gemmWeightAxes(node, weight.dims);
          rowsAxis = axes.outputAxis;
          columnsAxis = axes.inputAxis;
        } else if (node.opType === 'MatMul') {
          rowsAxis = 1;
          columnsAxis = 0;
          channelAxis = outShape.length - 1;
        }
        const width = weight.dims[rowsAxis]!;
        const space = newSpace(width, order(node));
        const segments = [{ space, width, repeat: 1 }];
        raw[space]!.producers.push(node.name);
        raw[space]!.producerOutputs.push(out);
        layouts.set(out, { axis: channelAxis, segments });
        bindings.push({ initializer: node.inputs[1]!, axis: rowsAxis, role: 'rows', segments });
        const bias = node.inputs[2];
        if (bias !== undefined && bias !== '' && isInitializer(bias)) {
          const biasDims = graph.model.graph.initializers.get(bias)!.dims;
          const axis = biasDims.length === 0 ? undefined : biasDims.length - 1;
          if (axis !== undefined && biasDims[axis] === width)
            bindings.push({ initializer: bias, axis, role: 'rows', segments });
        }
        if (inLayout === undefined)
          return fail(
            'unsupported-model',
            `Node '${node.name}' reads '${x}', whose channels zipit could not trace.`,
          );
        bindings.push({
          initializer: node.inputs[1]!,
          axis: columnsAxis,
          role: 'columns',
          segments: inLayout.segments,
        });
        let offset = 0;
        for (const s of inLayout.segments) {
          const target = raw[uf.find(s.space)]!;
          target.consumers.push(node.name);
          target.siteCandidates.push({ value: siteOf(x), offset, order: order(node) });
          offset += s.width;
        }
        break;
      }
      case 'per-channel': {
        if (inLayout === undefined) break; // e.g. Cast of a shape value
        layouts.set(out, inLayout);
        const width = inLayout.segments.reduce((a, s) => a + s.width * s.repeat, 0);
        for (const [i, p] of node.inputs.entries()) {
          if (i === 0 && node.opType !== 'Sub' && node.opType !== 'Div') continue;
          if (p === '' || p === x || !isInitializer(p)) continue;
          const dims = graph.model.graph.initializers.get(p)!.dims;
          // BN/LN parameters are 1-D over channels; depthwise Conv weights have channels on axis 0.
          const axis =
            node.opType === 'BatchNormalization' ||
            node.opType === 'LayerNormalization' ||
            node.opType === 'Conv'
              ? dims[0] === width
                ? 0
                : undefined
              : broadcastAxis(dims, outShape.length, inLayout.axis, width);
          if (axis === undefined) continue;
          bindings.push({ initializer: p, axis, role: 'rows', segments: inLayout.segments });
          for (const s of inLayout.segments) raw[uf.find(s.space)]!.parameters.push(p);
        }
        break;
      }
      case 'residual': {
        const inputs = node.inputs.map((i) => layouts.get(i));
        if (
          inputs.some((l) => l === undefined || l.segments.length !== inLayout?.segments.length)
        ) {
          return fail(
            'unsupported-model',
            `Node '${node.name}' (${node.opType}) combines values whose channels do not line up.`,
          );
        }
        for (const l of inputs)
          l!.segments.forEach((s, j) => uf.union(inLayout!.segments[j]!.space, s.space));
        layouts.set(out, inLayout!);
        break;
      }
      case 'concat': {
        const segments = node.inputs.flatMap((i) => layouts.get(i)?.segments ?? []);
        layouts.set(out, { axis: 1, segments });
        concats.push({ node: node.name, value: out, parts: segments });
        break;
      }
      case 'flatten': {
        if (inLayout === undefined) break;
        const inShape = shapeOf(x);
        const spatial = staticSize(inShape.slice(2)) ?? 0;
        if (spatial === 0)
          return fail('unsupported-model', `Node '${node.name}' flattens a map of unknown size.`);
        layouts.set(out, {
          axis: 1,
          segments: inLayout.segments.map((s) => ({ ...s, repeat: s.repeat * spatial })),
        });
        break;
      }
      case 'barrier': {
        fix(inLayout, `node '${node.name}' (${node.opType})`);
        const channels = outShape[1];
        const width = typeof channels === 'number' ? channels : 0;
        const space = newSpace(width, order(node), `node '${node.name}' (${node.opType})`);
        layouts.set(out, { axis: 1, segments: [{ space, width, repeat: 1 }] });
        break;
      }
      case 'shape':
      case undefined:
        break;
    }
  }
  // A weight shared by several nodes (tied weights) must be transformed once: the spaces it
  // binds on the same axis are one space, and one binding of each kind is enough.
  const seen = new Map<string, ParamBinding>();
  const unique: ParamBinding[] = [];
  for (const binding of bindings) {
    const key = `${binding.initializer}|${binding.axis}|${binding.role}`;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, binding);
      unique.push(binding);
    } else if (first.segments.length === binding.segments.length) {
      first.segments.forEach((s, j) => uf.union(s.space, binding.segments[j]!.space));
    } else {
      return fail(
        'unsupported-model',
        `Weight '${binding.initializer}' is shared by nodes whose channels do not line up.`,
      );
    }
  }
  bindings.splice(0, bindings.length, ...unique);
  for (const output of graph.model.graph.outputs)
    fix(layouts.get(output.name), `graph output '${output.name}'`);

  // Collapse the union-find into spaces numbered in graph order.
  const roots = [...new Set(raw.map((_, i) => uf.find(i)))];
  const merged = new Map<number, RawSpace>();
  for (const root of roots)
    merged.set(root, {
      ...raw[root]!,
      producers: [],
      consumers: [],
      parameters: [],
      siteCandidates: [],
      producerOutputs: [],
    });
  for (const [i, r] of raw.entries()) {
    const target = merged.get(uf.find(i))!;
    if (r.width !== target.width) {
      return fail(
        'unsupported-model',
        `Values tied by a residual Add have ${r.width} and ${target.width} channels (producers ${[...r.producers, ...target.producers].join(', ')}).`,
      );
    }
    target.producers.push(...r.producers);
    target.consumers.push(...r.consumers);
    target.parameters.push(...r.parameters);
    target.siteCandidates.push(...r.siteCandidates);
    target.producerOutputs.push(...r.producerOutputs);
    target.fixedBy ??= r.fixedBy;
    target.order = Math.min(target.order, r.order);
  }
  const sortedRoots = roots.sort((a, b) => merged.get(a)!.order - merged.get(b)!.order || a - b);
  const idOf = new Map(sortedRoots.map((root, id) => [root, id]));
  const renumber = (segments: readonly Segment[]): Segment[] =>
    segments.map((s) => ({ ...s, space: idOf.get(uf.find(s.space))! }));

  const spaces: FeatureSpace[] = sortedRoots.map((root, id) => {
    const r = merged.get(root)!;
    // The reference measures at the input of the consumer that comes last (for a residual stream,
    // the input of the next stage).
    const site = [...r.siteCandidates].sort((a, b) => b.order - a.order)[0];
    const kind: SpaceKind =
      r.fixedBy !== undefined ? 'fixed' : r.producers.length > 1 ? 'residual' : 'plain';
    return {
      id,
      width: r.width,
      kind,
      ...(r.fixedBy !== undefined ? { fixedBy: r.fixedBy } : {}),
      producers: [...new Set(r.producers)],
      consumers: [...new Set(r.consumers)],
      parameters: [...new Set(r.parameters)],
      ...(site ? { site: { value: site.value, offset: site.offset } } : {}),
      producerOutputs: r.producerOutputs,
    };
  });
  // A mergeable space must be measurable.
  for (const s of spaces) {
    if (s.kind !== 'fixed' && s.site === undefined) {
      return fail(
        'unsupported-model',
        `Space ${s.id} (written by ${s.producers.join(', ')}) has no consumer to measure; zipit cannot merge it.`,
      );
    }
  }
  return ok({
    spaces,
    concats: concats.map((c) => ({
      node: c.node,
      value: c.value,
      parts: [...new Set(renumber(c.parts).map((s) => s.space))],
    })),
    bindings: bindings.map((b) => ({ ...b, segments: renumber(b.segments) })),
    layouts: new Map(
      [...layouts].map(([name, l]) => [name, { axis: l.axis, segments: renumber(l.segments) }]),
    ),
  });
}
