/** @file ONNX tensors <-> typed arrays: the element types we read and write, raw or typed fields. */
import { fail, ok, type Result } from '../errors.js';

/** Element types we hold in memory. ONNX's numeric codes are in {@link ONNX_DATA_TYPE}. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/** ONNX TensorProto.DataType codes of the {@link DType}s. */
export const ONNX_DATA_TYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
} as const satisfies Record<DType, number>;

/** The typed array that holds each {@link DType}. */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** Any typed array a {@link Tensor} can hold. */
export type TensorArray = TypedArrayOf[DType];

/** A dense tensor in row-major (C) order. `dims` empty means a scalar. */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: TypedArrayOf[D];
}

/** Number of elements of a shape. */
export function sizeOf(dims: readonly number[]): number {
  let size = 1;
  for (const d of dims) size *= d;
  return size;
}

/** A float32 tensor over `data`, which must have `sizeOf(dims)` elements. */
export function float32Tensor(dims: readonly number[], data?: Float32Array): Tensor<'float32'> {
  const values = data ?? new Float32Array(sizeOf(dims));
  if (values.length !== sizeOf(dims)) {
    throw new Error(`float32Tensor: ${values.length} values for dims [${dims.join(', ')}]`);
  }
  return { dtype: 'float32', dims: [...dims], data: values };
}

/** An int64 tensor from plain numbers (shape constants, indices). */
export function int64Tensor(dims: readonly number[], values: readonly number[]): Tensor<'int64'> {
  return { dtype: 'int64', dims: [...dims], data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

/** The elements of an integer tensor as plain numbers (shape and index constants). */
export function tensorToNumbers(tensor: Tensor): number[] {
  return Array.from(tensor.data as ArrayLike<number | bigint>, (v) => Number(v));
}

const DTYPE_OF_CODE = new Map<number, DType>(
  Object.entries(ONNX_DATA_TYPE).map(([name, code]) => [code, name as DType]),
);

/** The {@link DType} of an ONNX data-type code, or undefined for one we do not hold. */
export function dtypeOfCode(code: number): DType | undefined {
  return DTYPE_OF_CODE.get(code);
}

const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

function allocate(dtype: DType, size: number): TensorArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'int8':
      return new Int8Array(size);
    case 'uint8':
    case 'bool':
      return new Uint8Array(size);
  }
}

/** The decoded shape of `onnx.TensorProto` we read (protobufjs object, keepCase). */
export interface TensorProtoLike {
  name?: string;
  dims?: Array<number | { toNumber(): number }>;
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: Array<number | { toString(): string }>;
  double_data?: number[];
  uint64_data?: Array<number | { toString(): string }>;
  data_location?: number;
  external_data?: Array<{ key?: string; value?: string }>;
}

function toNumber(value: number | { toNumber(): number } | { toString(): string }): number {
  if (typeof value === 'number') return value;
  return Number(value.toString());
}

/**
 * Decodes a TensorProto into a {@link Tensor}. Fails for external data (we read single-file
 * models) and for element types we do not hold.
 */
export function tensorFromProto(proto: TensorProtoLike): Result<Tensor> {
  const name = proto.name ?? '(unnamed)';
  if (proto.data_location === 1 || (proto.external_data?.length ?? 0) > 0) {
    return fail(
      'external-data',
      `Tensor '${name}' stores its data in an external file, which zipit does not read; ` +
        `re-save the model as one file (onnx.save_model(m, path, save_as_external_data=False)).`,
    );
  }
  const code = proto.data_type ?? 0;
  const dtype = dtypeOfCode(code);
  if (dtype === undefined) {
    return fail(
      'unsupported-model',
      `Tensor '${name}' has ONNX data type ${code}, which zipit does not support ` +
        `(supported: float32, float64, int64, int32, int8, uint8, bool).`,
    );
  }
  const dims = (proto.dims ?? []).map(toNumber);
  // Sizes are checked against the data present before anything is allocated: a damaged dims
  // field must not ask for gigabytes (or a negative length, which would throw).
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    return fail(
      'truncated',
      `Tensor '${name}' has invalid dims [${dims.join(', ')}]; the file is damaged.`,
    );
  }
  const size = sizeOf(dims);
  const raw = proto.raw_data;
  if (raw instanceof Uint8Array && raw.length > 0) {
    const expected = size * BYTES_PER_ELEMENT[dtype];
    if (raw.length !== expected) {
      return fail(
        'truncated',
        `Tensor '${name}' has ${raw.length} bytes of data, expected ${expected} for ` +
          `${dtype}[${dims.join(', ')}]; the file is damaged.`,
      );
    }
    const data = allocate(dtype, size);
    // Copy through a byte view: raw_data need not be aligned for the typed array.
    new Uint8Array(data.buffer).set(raw);
    return ok({ dtype, dims, data } as Tensor);
  }
  const typed = typedField(proto, dtype);
  if (typed.length !== size && size > 0) {
    return fail(
      'truncated',
      `Tensor '${name}' has ${typed.length} values, expected ${size} for ${dtype}[${dims.join(', ')}].`,
    );
  }
  const data = allocate(dtype, size);
  for (let i = 0; i < size; i++) {
    const v = typed[i]!;
    if (data instanceof BigInt64Array) data[i] = BigInt(v.toString());
    else data[i] = toNumber(v);
  }
  return ok({ dtype, dims, data } as Tensor);
}

function typedField(
  proto: TensorProtoLike,
  dtype: DType,
): ReadonlyArray<number | { toString(): string }> {
  switch (dtype) {
    case 'float32':
      return proto.float_data ?? [];
    case 'float64':
      return proto.double_data ?? [];
    case 'int64':
      return proto.int64_data ?? [];
    case 'int32':
    case 'int8':
    case 'uint8':
    case 'bool':
      return proto.int32_data ?? [];
  }
}

/** Encodes a {@link Tensor} as a TensorProto object with raw_data (little-endian, as ONNX says). */
export function tensorToProto(name: string, tensor: Tensor): TensorProtoLike {
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  return {
    name,
    dims: [...tensor.dims],
    data_type: ONNX_DATA_TYPE[tensor.dtype],
    raw_data: Uint8Array.from(bytes),
  };
}
