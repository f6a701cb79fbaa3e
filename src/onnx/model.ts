/** @file The in-memory ONNX model (our IR's storage form) and its decoding from / encoding to bytes. */
import { errorFirstLine, fail, ok, type Result } from '../errors.js';
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

/**
 * The ONNX IR version each default-domain opset was released with (onnx/helper.py's
 * VERSION_TABLE): the first entry whose opset is at least the model's gives its minimum.
 */
const IR_VERSION_OF_OPSET: readonly (readonly [opset: number, irVersion: number])[] = [
  [8, 3],
  [9, 4],
  [10, 5],
  [11, 6],
  [14, 7],
  [18, 8],
  [20, 9],
  [22, 10],
];

/** The IR version used when the opset is newer than the table knows. */
const LATEST_IR_VERSION = 11;

/**
 * The IR version to write for a model: its own when valid, raised to the one its default opset
 * needs. A file claiming ir_version 0 (or any below the opset's) is rejected by the ONNX checker,
 * and merging used to copy it into the output.
 */
export function validIrVersion(model: Model): number {
  const opset = defaultOpset(model);
  const needed =
    IR_VERSION_OF_OPSET.find(([maxOpset]) => opset <= maxOpset)?.[1] ?? LATEST_IR_VERSION;
  return Math.max(model.irVersion, needed);
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

/**
 * Text of a `bytes` field. A damaged file can set an attribute's type to STRING without its
 * `s` field; protobufjs then hands back its default, which is not always a Uint8Array.
 */
const bytesText = (bytes: unknown): string =>
  bytes instanceof Uint8Array ? utf8.decode(bytes) : '';

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
      return ok({ type: 'string', value: bytesText(proto.s) });
    case 4: {
      const tensor = tensorFromProto(proto.t ?? {});
      return tensor.ok ? ok({ type: 'tensor', value: tensor.value }) : tensor;
    }
    case 6:
      return ok({ type: 'floats', value: [...(proto.floats ?? [])] });
    case 7:
      return ok({ type: 'ints', value: (proto.ints ?? []).map(num) });
    case 8:
      return ok({ type: 'strings', value: (proto.strings ?? []).map(bytesText) });
    default:
      return fail(
        'unsupported-model',
        `Unsupported ${where} (ONNX attribute type ${proto.type ?? 'unset'}): zipit handles ` +
          `graphs without sub-graphs or sparse tensors.`,
      );
  }
}

/**
 * The first byte of every ModelProto a tool writes: a field tag of ModelProto (field number
 * << 3 | wire type; 0x08 is ir_version, which exporters write first). Any other first byte
 * means the file is something else; without this check a text file (JSON, a Git LFS pointer)
 * can decode as a protobuf that merely "ends early" and be reported as truncated.
 */
const MODEL_FIRST_BYTES = new Set([
  0x08, 0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0xa2, 0xca,
]);

function describeStart(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 40);
  const printable = head.every(
    (b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f),
  );
  if (printable) {
    const text = utf8.decode(head).split(/\r?\n/)[0]!;
    return `it is text starting with '${text}'`;
  }
  const hex = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `it starts with bytes ${hex}, not a protobuf ModelProto`;
}

/**
 * Decodes ONNX bytes into a {@link Model}. Fails with 'not-onnx' when the bytes are not a
 * ModelProto, 'truncated' when they end early, 'external-data' for external tensors.
 */
export function decodeModel(bytes: Uint8Array): Result<Model> {
  const first = bytes[0];
  if (first !== undefined && !MODEL_FIRST_BYTES.has(first)) {
    return fail('not-onnx', `The file is not an ONNX model (${describeStart(bytes)}).`);
  }
  let proto: ProtoModel;
  try {
    proto = modelProtoType().decode(bytes) as unknown as ProtoModel;
  } catch (error: unknown) {
    const text = errorFirstLine(error);
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

/** The first float initializer holding NaN or ±Infinity: its name, how many, and the first one. */
export interface NonFiniteWeight {
  readonly name: string;
  readonly count: number;
  readonly index: number;
  readonly value: number;
}

/** Finds the first float initializer with non-finite values, in initializer order. */
export function findNonFiniteWeight(model: Model): NonFiniteWeight | undefined {
  for (const [name, tensor] of model.graph.initializers) {
    if (tensor.dtype !== 'float32' && tensor.dtype !== 'float64') continue;
    const data = tensor.data as Float32Array | Float64Array;
    let count = 0;
    let index = -1;
    for (let i = 0; i < data.length; i++) {
      if (Number.isFinite(data[i])) continue;
      if (count === 0) index = i;
      count += 1;
    }
    if (count > 0) return { name, count, index, value: data[index]! };
  }
  return undefined;
}

/** `count value(s) (v at index i)`, the shared part of every non-finite-weight message. */
export function describeNonFinite(bad: NonFiniteWeight): string {
  return `${bad.count} non-finite value${bad.count === 1 ? '' : 's'} (${String(bad.value)} at index ${bad.index})`;
}

/**
 * Fails when a weight holds NaN or ±Infinity, naming the first such initializer, how many
 * values are bad and where the first one is. Merging averages weights, so one NaN would
 * silently turn the merged model's outputs into NaN.
 */
export function checkFiniteWeights(model: Model): Result<void> {
  const bad = findNonFiniteWeight(model);
  if (bad === undefined) return ok(undefined);
  return fail(
    'bad-statistics',
    `Weight '${bad.name}' has ${describeNonFinite(bad)}; zipit cannot merge a model with NaN or infinite weights.`,
  );
}
