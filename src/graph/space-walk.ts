/**
 * @file The state of one feature-space walk over an analysed graph: a union-find over the spaces
 * opened so far, each value's channel layout, and the parameter bindings found. It lives for one
 * call of `analyzeSpaces` and is never stored on the graph.
 */
import type { Dim, Node } from '../onnx/model.js';
import type { Tensor } from '../onnx/tensor.js';
import type { AnalyzedGraph } from './analyze.js';
import type { ChannelLayout, ParamBinding, Segment } from './space-types.js';

/** Per-channel means over the spatial axes: a site is read before them (siteOf). */
const SPATIAL_MEANS = new Set(['GlobalAveragePool', 'ReduceMean']);

/** Union-find over space ids: a residual Add or a tied weight joins two spaces into one. */
export class UnionFind {
  private readonly parent: number[] = [];

  /** A new singleton; returns its id. */
  add(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }

  /** The representative of `x`'s set (with path compression). */
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

  /** Joins the sets of `a` and `b`. */
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    // Keep the older (smaller) root so a space is named by its first appearance.
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}

/** A space as one producer (or the graph input, or a barrier) opened it, before ties are resolved. */
export interface RawSpace {
  width: number;
  producers: string[];
  consumers: string[];
  parameters: string[];
  /** Inputs of the consumers, with the space's channel offset there and the consumer's position. */
  siteCandidates: { value: string; offset: number; order: number }[];
  producerOutputs: string[];
  fixedBy?: string;
  /** Position in graph order of the node that opened it (-1 for a graph input). */
  order: number;
  /** Attention heads the channels are split into (space-types.ts FeatureSpace.groups). */
  groups?: number;
}

/** A channel Concat met by the walk; its parts are still raw space ids. */
export interface RawConcat {
  readonly node: string;
  readonly value: string;
  readonly parts: readonly Segment[];
}

/** What the walk has found so far; the role steps (space-steps.ts) add to it node by node. */
export class SpaceWalk {
  readonly union = new UnionFind();
  /** Every space opened, by raw id; ids tied by {@link union} describe one space. */
  readonly raw: RawSpace[] = [];
  readonly layouts = new Map<string, ChannelLayout>();
  readonly bindings: ParamBinding[] = [];
  readonly concats: RawConcat[] = [];
  /**
   * Activations without channels: statistics over the channels (a LayerNorm's mean and
   * variance, written out) and attention's scores. Exact under any permutation of the spaces.
   */
  readonly channelFree = new Set<string>();
  /** For a value whose channels are split into heads: the [..., C] value they were split from. */
  readonly unsplit = new Map<string, string>();
  /**
   * Attention scores (and values computed from them): the raw Q/K space that made them and
   * the axis holding their heads.
   */
  readonly scores = new Map<string, { readonly space: number; readonly headAxis: number }>();
  /** Each attention met: its Q/K space and its V space (raw ids), which share head indices. */
  readonly attention: { queryKey: number; value: number }[] = [];
  /**
   * Raw Q/K spaces whose heads must stay in place: their scores meet something indexed by
   * head (a per-head bias or temperature, a weight mixing heads, a graph output).
   */
  readonly headsInPlace = new Set<number>();
  private readonly nodeOrder: ReadonlyMap<string, number>;
  /** Fixed spaces opened by {@link fixedReading}, by value and axis. */
  private readonly fixedReadings = new Map<string, ChannelLayout>();

  constructor(readonly graph: AnalyzedGraph) {
    this.nodeOrder = new Map(graph.model.graph.nodes.map((n, i) => [n.name, i]));
  }

  /**
   * `out` carries the channels of `from` (laid out as `layout`), its axes renumbered by
   * `moveAxis` (a rank change, a transpose); a value split into heads keeps the [..., C] value
   * its heads came from.
   */
  carry(out: string, from: string, layout: ChannelLayout, moveAxis = (a: number) => a): void {
    this.layouts.set(out, {
      axis: moveAxis(layout.axis),
      segments: layout.segments,
      ...(layout.heads ? { heads: { ...layout.heads, axis: moveAxis(layout.heads.axis) } } : {}),
    });
    if (layout.heads !== undefined) this.unsplit.set(out, this.unsplit.get(from) ?? '');
  }

  /** Marks `value` as without channels, keeping the attention scores an input came from. */
  free(value: string, inputs: readonly string[]): void {
    this.channelFree.add(value);
    const from = inputs.find((i) => this.scores.has(i));
    if (from === undefined) return;
    const scores = this.scores.get(from)!;
    // A constant with several entries along the heads (a per-head bias) ties heads to places.
    const rank = this.shapeOf(value).length;
    for (const input of inputs) {
      const dims = this.initializer(input)?.dims ?? this.graph.states.get(input)?.shape;
      if (input === from || dims === undefined || this.channelFree.has(input)) continue;
      const at = scores.headAxis - (rank - dims.length);
      if (at >= 0 && dims[at] !== 1) this.headsInPlace.add(scores.space);
    }
    const shift = rank - this.shapeOf(from).length;
    this.scores.set(value, { ...scores, headAxis: scores.headAxis + shift });
  }

  /** The node's position in graph order. */
  order(node: Node): number {
    return this.nodeOrder.get(node.name) ?? 0;
  }

  /** Opens a space of `width` channels at graph position `position`; fixed when `fixedBy` says why. */
  newSpace(width: number, position: number, fixedBy?: string): number {
    const id = this.union.add();
    this.raw.push({
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
  }

  /** The space a raw id currently belongs to (its union-find root's record). */
  space(id: number): RawSpace {
    return this.raw[this.union.find(id)]!;
  }

  /** Marks every space of `layout` fixed, keeping the first reason given. */
  fix(layout: ChannelLayout | undefined, reason: string): void {
    for (const s of layout?.segments ?? []) this.space(s.space).fixedBy ??= reason;
  }

  /**
   * The layout of `value` read along `axis` (`width` entries) when its traced channels are all
   * fixed and on another axis: a new fixed space, opened once per value and axis at `position`.
   */
  fixedReading(
    value: string,
    axis: number,
    width: number,
    position: number,
    reason: string,
  ): ChannelLayout {
    const key = `${value}|${axis}`;
    const known = this.fixedReadings.get(key);
    if (known !== undefined) return known;
    const space = this.newSpace(width, position, reason);
    const layout = { axis, segments: [{ space, width, repeat: 1 }] };
    this.fixedReadings.set(key, layout);
    return layout;
  }

  /** The inferred shape of a value ([] when unknown). */
  shapeOf(value: string): readonly Dim[] {
    return this.graph.states.get(value)?.shape ?? [];
  }

  /** The initializer of that name, if the value is one. */
  initializer(name: string): Tensor | undefined {
    return this.graph.model.graph.initializers.get(name);
  }

  /**
   * The value to measure a consumer's input at: before any flatten, so channels keep their axis,
   * and before a global average pool (GlobalAveragePool, or ReduceMean over the spatial axes):
   * the reference measures the map its avgpool reads, every (image, position) an observation,
   * not the N per-image means. Likewise before taking one token (a class token's Gather): every
   * token is an observation of the residual stream.
   */
  siteOf(value: string): string {
    const producer = this.graph.producer.get(value);
    const role = producer && this.graph.roles.get(producer.name);
    // Not back into attention's heads: their channels span two axes.
    const source = producer && this.layouts.get(producer.inputs[0]!);
    if (
      producer &&
      source !== undefined &&
      source.heads === undefined &&
      (role === 'flatten' ||
        (role === 'select' && this.layouts.get(value)?.segments === source.segments) ||
        (role === 'per-channel' && SPATIAL_MEANS.has(producer.opType)))
    )
      return this.siteOf(producer.inputs[0]!);
    return value;
  }
}
