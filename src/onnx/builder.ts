/** @file A small graph builder: named values, initializers and nodes, emitted as a {@link Model}. */
import type { Attribute, Dim, Model, Node, ValueInfo } from './model.js';
import type { Tensor } from './tensor.js';

/** Attribute values as plain JS: numbers are ints unless wrapped by {@link float}. */
export type AttributeInput =
  number | string | readonly number[] | { float: number } | { floats: readonly number[] } | Tensor;

/** Marks a number as a FLOAT attribute (plain numbers become INT). */
export function float(value: number): { float: number } {
  return { float: value };
}

function toAttribute(value: AttributeInput): Attribute {
  if (typeof value === 'number') return { type: 'int', value };
  if (typeof value === 'string') return { type: 'string', value };
  if (Array.isArray(value)) return { type: 'ints', value: [...(value as number[])] };
  if ('float' in value) return { type: 'float', value: value.float };
  if ('floats' in value) return { type: 'floats', value: [...value.floats] };
  return { type: 'tensor', value: value as Tensor };
}

/** How {@link GraphBuilder.node} names a node, its outputs and its operator domain. */
export interface NodeOptions {
  readonly name?: string;
  /** Output names, or how many fresh ones to make (default 1). */
  readonly outputs?: readonly string[] | number;
  /** Operator domain (default '', the ONNX standard); any other is imported at version 1. */
  readonly domain?: string;
}

/** The ONNX opset our own models are written in. */
export const BUILDER_OPSET = 17;

/** Builds a graph node by node; names are made unique by a per-prefix counter. */
export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers = new Map<string, Tensor>();
  private readonly counters = new Map<string, number>();
  /** Non-default operator domains used, with the opset version each is imported at. */
  private readonly domains = new Map<string, number>();

  constructor(private readonly name: string) {}

  /** A fresh name `prefix` or `prefix_N`. */
  fresh(prefix: string): string {
    const count = this.counters.get(prefix) ?? 0;
    this.counters.set(prefix, count + 1);
    return count === 0 ? prefix : `${prefix}_${count}`;
  }

  /** Declares a float32 graph input. */
  input(name: string, shape: readonly Dim[]): string {
    this.inputs.push({ name, elemType: 1, shape });
    return name;
  }

  /** Declares a graph output, float32 unless `elemType` (an ONNX element-type code) says otherwise. */
  output(name: string, shape?: readonly Dim[], elemType = 1): void {
    this.outputs.push({ name, elemType, ...(shape ? { shape } : {}) });
  }

  /** Adds a weight; returns its (unique) name. */
  weight(name: string, tensor: Tensor): string {
    // fresh() hands out the bare name first, so loop past names already taken.
    let unique = name;
    while (this.initializers.has(unique)) unique = this.fresh(name);
    this.initializers.set(unique, tensor);
    return unique;
  }

  /** True when a weight of this name has been added. */
  hasWeight(name: string): boolean {
    return this.initializers.has(name);
  }

  /** Adds a node; returns its output names. `outputs` gives their names (or a count of fresh ones). */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    options: NodeOptions = {},
  ): string[] {
    const name = options.name ?? this.fresh(opType.toLowerCase());
    const outputs =
      typeof options.outputs === 'number' || options.outputs === undefined
        ? Array.from({ length: options.outputs ?? 1 }, (_, i) =>
            i === 0 ? name : `${name}_out${i}`,
          )
        : [...options.outputs];
    const attrs: Record<string, Attribute> = {};
    for (const [key, value] of Object.entries(attributes)) attrs[key] = toAttribute(value);
    const domain = options.domain ?? '';
    if (domain !== '') this.domains.set(domain, 1);
    this.nodes.push({ name, opType, domain, inputs: [...inputs], outputs, attributes: attrs });
    return outputs;
  }

  /** Adds a node as it is (e.g. copied from another graph), keeping its name and domain. */
  append(node: Node): void {
    if (node.domain !== '' && node.domain !== 'ai.onnx' && !this.domains.has(node.domain))
      this.domains.set(node.domain, 1);
    this.nodes.push(node);
  }

  /** Adds a single-output node and returns its output name. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    name?: string,
  ): string {
    return this.node(opType, inputs, attributes, name ? { name } : {})[0]!;
  }

  /**
   * `model` with the built nodes, initializers and outputs as its graph's, and everything else
   * (IR version, opsets, metadata, graph name and inputs) kept: how a pass that rewrites an
   * existing model finishes. Value infos are dropped, since the rewrite may change shapes.
   */
  buildInto(model: Model): Model {
    return {
      ...model,
      graph: {
        ...model.graph,
        nodes: [...this.nodes],
        initializers: new Map(this.initializers),
        outputs: [...this.outputs],
        valueInfo: [],
      },
    };
  }

  /** The finished model. */
  build(metadata: Readonly<Record<string, string>> = {}): Model {
    return {
      irVersion: 8,
      opsetImports: [
        { domain: '', version: BUILDER_OPSET },
        ...[...this.domains].map(([domain, version]) => ({ domain, version })),
      ],
      producerName: 'zipit-merge',
      producerVersion: '0.1.0',
      docString: '',
      metadata: { ...metadata },
      graph: {
        name: this.name,
        nodes: [...this.nodes],
        inputs: [...this.inputs],
        outputs: [...this.outputs],
        initializers: new Map(this.initializers),
        valueInfo: [],
      },
    };
  }
}
