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
  private readonly nodeOrder: ReadonlyMap<string, number>;
  /** Fixed spaces opened by {@link fixedReading}, by value and axis. */
  private readonly fixedReadings = new Map<string, ChannelLayout>();

  constructor(readonly graph: AnalyzedGraph) {
    this.nodeOrder = new Map(graph.model.graph.nodes.map((n, i) => [n.name, i]));
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
   * not the N per-image means.
   */
  siteOf(value: string): string {
    const producer = this.graph.producer.get(value);
    const role = producer && this.graph.roles.get(producer.name);
    if (
      producer &&
      (role === 'flatten' || (role === 'per-channel' && SPATIAL_MEANS.has(producer.opType)))
    )
      return this.siteOf(producer.inputs[0]!);
    return value;
  }
}
