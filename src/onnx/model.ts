/** @file The in-memory ONNX model (our IR's storage form) and its decoding from / encoding to bytes. */
import { fail, ok, type Result } from '../errors.js';
import { modelProtoType } from './schema.js';
import {
  tensorFromProto,
  tensorToProto,
  dtypeOfCode,
  type Tensor,
  type TensorProtoLike,
} from './tensor.js';

/** A dimension: a fixed size, a symbolic name (e.g. a dynamic batch 'N'), or unknown. */
export type Dim = number | string | null;

/** A typed graph value: name, ONNX element-type code, and shape when known. */
export interface ValueInfo {
  readonly name: string;
  readonly elemType: number;
  readonly shape?: readonly Dim[];
}

/** A node attribute, decoded. Sub-graphs are not supported (no control flow in merged models). */
export type Attribute =
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'strings'; readonly value: readonly string[] }
  | { readonly type: 'tensor'; readonly value: Tensor };

/** One operator application. Empty strings in `inputs` are omitted optional inputs. */
export interface Node {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, Attribute>>;
}

/** A computation graph: nodes (topologically ordered once validated), typed inputs/outputs, weights. */
export interface Graph {
  readonly name: string;
  readonly nodes: readonly Node[];
  /** Runtime inputs only: inputs that merely duplicate an initializer are dropped on decode. */
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly initializers: ReadonlyMap<string, Tensor>;
  readonly valueInfo: readonly ValueInfo[];
}

/** A whole model: the graph plus the file-level fields we keep. */
export interface Model {
  readonly irVersion: number;
  readonly opsetImports: readonly { readonly domain: string; readonly version: number }[];
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly graph: Graph;
}

/** The default-domain opset version a model imports (ONNX's `ai.onnx`, domain '' or 'ai.onnx'). */
export function defaultOpset(model: Model): number {
  const entry = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return entry?.version ?? 0;
}

/* ---------- decoding ---------- */

type Long = number | { toNumber(): number };
const num = (v: Long | undefined | null): number =>
  v === undefined || v === null ? 0 : typeof v === 'number' ? v : v.toNumber();

interface ProtoDim {
  dim_value?: Long;
  dim_param?: string;
}
interface ProtoValueInfo {
  name?: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: ProtoDim[] } } };
}
interface ProtoAttribute {
  name?: string;
  type?: number;
  f?: number;
  i?: Long;
  s?: Uint8Array;
  t?: TensorProtoLike;
  g?: unknown;
  floats?: number[];
  ints?: Long[];
  strings?: Uint8Array[];
  graphs?: unknown[];
}
interface ProtoNode {
  name?: string;
  op_type?: string;
  domain?: string;
  input?: string[];
  output?: string[];
  attribute?: ProtoAttribute[];
}
interface ProtoModel {
  ir_version?: Long;
  producer_name?: string;
  producer_version?: string;
  doc_string?: string;
  opset_import?: Array<{ domain?: string; version?: Long }>;
  metadata_props?: Array<{ key?: string; value?: string }>;
  functions?: unknown[];
  graph?: {
    name?: string;
    node?: ProtoNode[];
    input?: ProtoValueInfo[];
    output?: ProtoValueInfo[];
    value_info?: ProtoValueInfo[];
    initializer?: TensorProtoLike[];
    sparse_initializer?: unknown[];
  };
}

const utf8 = new TextDecoder();

function decodeValueInfo(proto: ProtoValueInfo): ValueInfo {
  const tensorType = proto.type?.tensor_type;
  const dims = tensorType?.shape?.dim;
  const shape = dims?.map((d): Dim => {
    // protobufjs puts proto2 defaults on the prototype: only own properties were in the file.
    if (Object.hasOwn(d, 'dim_value')) return num(d.dim_value);
    if (Object.hasOwn(d, 'dim_param') && d.dim_param) return d.dim_param;
    return null;
  });
  return {
    name: proto.name ?? '',
    elemType: tensorType?.elem_type ?? 0,
    ...(shape !== undefined ? { shape } : {}),
  };
}

function decodeAttribute(node: string, proto: ProtoAttribute): Result<Attribute> {
  const where = `attribute '${proto.name}' of node '${node}'`;
  switch (proto.type) {
    case 1:
      return ok({ type: 'float', value: proto.f ?? 0 });
    case 2:
      return ok({ type: 'int', value: num(proto.i) });
    case 3:
      return ok({ type: 'string', value: utf8.decode(proto.s ?? new Uint8Array()) });
    case 4: {
      const tensor = tensorFromProto(proto.t ?? {});
      return tensor.ok ? ok({ type: 'tensor', value: tensor.value }) : tensor;
    }
    case 6:
      return ok({ type: 'floats', value: [...(proto.floats ?? [])] });
    case 7:
      return ok({ type: 'ints', value: (proto.ints ?? []).map(num) });
    case 8:
      return ok({ type: 'strings', value: (proto.strings ?? []).map((s) => utf8.decode(s)) });
    default:
      return fail(
        'unsupported-model',
        `Unsupported ${where} (ONNX attribute type ${proto.type ?? 'unset'}): zipit handles ` +
          `graphs without sub-graphs or sparse tensors.`,
      );
  }
}

/**
 * Decodes ONNX bytes into a {@link Model}. Fails with 'not-onnx' when the bytes are not a
 * ModelProto, 'truncated' when they end early, 'external-data' for external tensors.
 */
export function decodeModel(bytes: Uint8Array): Result<Model> {
  let proto: ProtoModel;
  try {
    proto = modelProtoType().decode(bytes) as unknown as ProtoModel;
  } catch (error: unknown) {
    const text = error instanceof Error ? error.message : String(error);
    if (/index out of range/i.test(text)) {
      return fail('truncated', `The file ends early (${text}); it is truncated or damaged.`);
    }
    return fail('not-onnx', `The file is not an ONNX model (protobuf decoding failed: ${text}).`);
  }
  const graph = proto.graph;
  if (graph === undefined || graph === null || (graph.node ?? []).length === 0) {
    return fail('not-onnx', 'The file is not an ONNX model (it has no graph with nodes).');
  }
  if ((graph.sparse_initializer ?? []).length > 0) {
    return fail(
      'unsupported-model',
      'The model has sparse initializers, which zipit does not read.',
    );
  }
  const initializers = new Map<string, Tensor>();
  for (const t of graph.initializer ?? []) {
    const tensor = tensorFromProto(t);
    if (!tensor.ok) return tensor;
    initializers.set(t.name ?? '', tensor.value);
  }
  const nodes: Node[] = [];
  for (const [index, n] of (graph.node ?? []).entries()) {
    const name = n.name || `${n.op_type ?? 'node'}_${index}`;
    const attributes: Record<string, Attribute> = {};
    for (const a of n.attribute ?? []) {
      const attribute = decodeAttribute(name, a);
      if (!attribute.ok) return attribute;
      attributes[a.name ?? ''] = attribute.value;
    }
    nodes.push({
      name,
      opType: n.op_type ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes,
    });
  }
  const metadata: Record<string, string> = {};
  for (const entry of proto.metadata_props ?? []) metadata[entry.key ?? ''] = entry.value ?? '';
  return ok({
    irVersion: num(proto.ir_version),
    opsetImports: (proto.opset_import ?? []).map((o) => ({
      domain: o.domain ?? '',
      version: num(o.version),
    })),
    producerName: proto.producer_name ?? '',
    producerVersion: proto.producer_version ?? '',
    docString: proto.doc_string ?? '',
    metadata,
    graph: {
      name: graph.name ?? 'graph',
      nodes,
      // Older exporters list every initializer as a graph input too; those are weights, not inputs.
      inputs: (graph.input ?? []).map(decodeValueInfo).filter((v) => !initializers.has(v.name)),
      outputs: (graph.output ?? []).map(decodeValueInfo),
      initializers,
      valueInfo: (graph.value_info ?? []).map(decodeValueInfo),
    },
  });
}

/* ---------- encoding ---------- */

function encodeValueInfo(info: ValueInfo): object {
  const tensorType: Record<string, unknown> = { elem_type: info.elemType };
  if (info.shape !== undefined) {
    tensorType.shape = {
      dim: info.shape.map((d) =>
        typeof d === 'number' ? { dim_value: d } : typeof d === 'string' ? { dim_param: d } : {},
      ),
    };
  }
  return { name: info.name, type: { tensor_type: tensorType } };
}

const utf8Encoder = new TextEncoder();

function encodeAttribute(name: string, attribute: Attribute): object {
  switch (attribute.type) {
    case 'float':
      return { name, type: 1, f: attribute.value };
    case 'int':
      return { name, type: 2, i: attribute.value };
    case 'string':
      return { name, type: 3, s: utf8Encoder.encode(attribute.value) };
    case 'tensor':
      return { name, type: 4, t: tensorToProto('', attribute.value) };
    case 'floats':
      return { name, type: 6, floats: [...attribute.value] };
    case 'ints':
      return { name, type: 7, ints: [...attribute.value] };
    case 'strings':
      return { name, type: 8, strings: attribute.value.map((s) => utf8Encoder.encode(s)) };
  }
}

/** Encodes a {@link Model} as ONNX bytes (weights as raw_data). */
export function encodeModel(model: Model): Uint8Array {
  const g = model.graph;
  const proto = {
    ir_version: model.irVersion,
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    doc_string: model.docString || undefined,
    opset_import: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    metadata_props: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        name: n.name,
        op_type: n.opType,
        domain: n.domain || undefined,
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attributes).map(([name, a]) => encodeAttribute(name, a)),
      })),
      initializer: [...g.initializers].map(([name, t]) => tensorToProto(name, t)),
      input: g.inputs.map(encodeValueInfo),
      output: g.outputs.map(encodeValueInfo),
      value_info: g.valueInfo.map(encodeValueInfo),
    },
  };
  const type = modelProtoType();
  return type.encode(type.fromObject(proto)).finish();
}

/** The element type name of a value, for messages. */
export function elemTypeName(code: number): string {
  return dtypeOfCode(code) ?? `type ${code}`;
}
