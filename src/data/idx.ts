/** @file The IDX format of MNIST and Fashion-MNIST (plain or gzip): parse, encode, load pairs. */

// Layout: bytes 0-1 are zero, byte 2 the element type, byte 3 the number of dimensions; then
// each dimension as a big-endian uint32; then the elements, big-endian, row-major.

import { fail, ok, type Result } from '../errors.js';
import { createDataset, type Dataset } from './dataset.js';
import { formatBytes, MAX_DATA_BYTES } from '../files/regular-file.js';
import { gunzipIfCompressed, gunzipPrefix, isGzip, readFileBytes } from './read-file.js';

/** The element types IDX can hold. */
export type IdxDataType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed array each {@link IdxDataType} decodes to. */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX file: an n-dimensional array, row-major. */
export interface IdxArray {
  readonly dataType: IdxDataType;
  /** Sizes, outermost first: `[count, height, width]` for an images file. */
  readonly dims: readonly number[];
  /** The elements in host byte order; `length` is the product of `dims`. */
  readonly data: IdxData;
}

interface TypeInfo {
  readonly code: number;
  readonly bytes: number;
  readonly read: (view: DataView, offset: number) => number;
  readonly write: (view: DataView, offset: number, value: number) => void;
  readonly make: (length: number) => IdxData;
}

// IDX stores multi-byte elements big-endian, hence `false` for littleEndian throughout.
const TYPES = {
  uint8: {
    code: 0x08,
    bytes: 1,
    read: (v, o) => v.getUint8(o),
    write: (v, o, x) => v.setUint8(o, x),
    make: (n) => new Uint8Array(n),
  },
  int8: {
    code: 0x09,
    bytes: 1,
    read: (v, o) => v.getInt8(o),
    write: (v, o, x) => v.setInt8(o, x),
    make: (n) => new Int8Array(n),
  },
  int16: {
    code: 0x0b,
    bytes: 2,
    read: (v, o) => v.getInt16(o, false),
    write: (v, o, x) => v.setInt16(o, x, false),
    make: (n) => new Int16Array(n),
  },
  int32: {
    code: 0x0c,
    bytes: 4,
    read: (v, o) => v.getInt32(o, false),
    write: (v, o, x) => v.setInt32(o, x, false),
    make: (n) => new Int32Array(n),
  },
  float32: {
    code: 0x0d,
    bytes: 4,
    read: (v, o) => v.getFloat32(o, false),
    write: (v, o, x) => v.setFloat32(o, x, false),
    make: (n) => new Float32Array(n),
  },
  float64: {
    code: 0x0e,
    bytes: 8,
    read: (v, o) => v.getFloat64(o, false),
    write: (v, o, x) => v.setFloat64(o, x, false),
    make: (n) => new Float64Array(n),
  },
} satisfies Record<IdxDataType, TypeInfo>;

const TYPE_BY_CODE = new Map(
  Object.entries(TYPES).map(([name, info]) => [info.code, name as IdxDataType]),
);

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** What an IDX header says: the element type, the dims, and the byte lengths they imply. */
export interface IdxHeader {
  readonly dataType: IdxDataType;
  readonly dims: readonly number[];
  /** Bytes of the header itself: 4 + 4 per dimension. */
  readonly headerBytes: number;
  /** Bytes of the whole file the header describes: header, then every element. */
  readonly expectedBytes: number;
}

/**
 * Decodes the header at the start of `bytes` (which may hold only its first part of the file).
 *
 * @param source - The file's path, named in every failure message.
 */
export function parseIdxHeader(bytes: Uint8Array, source: string): Result<IdxHeader> {
  if (bytes.length < 4) {
    return fail('truncated', `Expected an IDX header of at least 4 bytes in ${source}, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const typeCode = view.getUint8(2);
  const rank = view.getUint8(3);
  const dataType = TYPE_BY_CODE.get(typeCode);
  if (view.getUint16(0) !== 0 || dataType === undefined || rank === 0) {
    return fail(
      'bad-dataset',
      `Expected an IDX file in ${source} (magic 00 00 <type 08|09|0b|0c|0d|0e> <dims>, e.g. 00 00 08 03 for images), got ${hex(bytes.subarray(0, 4))}`,
    );
  }
  // Images have 3 dims and labels 1; more is a damaged header, whose dims (up to 255 of them)
  // would otherwise fill the message and overflow the size to Infinity.
  if (rank > 4) {
    return fail(
      'bad-dataset',
      `Expected an IDX file in ${source} with at most 4 dims (images have 3, labels 1), got ${rank}; it is damaged or not an IDX file`,
    );
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    return fail(
      'truncated',
      `Expected an IDX header of ${headerBytes} bytes (${rank} dims) in ${source}, got ${bytes.length} bytes; the file is truncated`,
    );
  }
  const dims = Array.from({ length: rank }, (_, d) => view.getUint32(4 + 4 * d, false));
  const length = dims.reduce((product, dim) => product * dim, 1);
  return ok({ dataType, dims, headerBytes, expectedBytes: headerBytes + length * TYPES[dataType].bytes });
}

/**
 * Decodes IDX bytes (already decompressed). A uint8 or int8 array is a view on `bytes`, not a
 * copy, because the images file of Fashion-MNIST is 47 MB.
 *
 * @param source - The file's path, named in every failure message.
 */
export function parseIdx(bytes: Uint8Array, source: string): Result<IdxArray> {
  const header = parseIdxHeader(bytes, source);
  if (!header.ok) return header;
  const { dataType, dims, headerBytes, expectedBytes } = header.value;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type: TypeInfo = TYPES[dataType];
  const length = dims.reduce((product, dim) => product * dim, 1);
  const described = `${dims.join('x')} ${dataType} (${expectedBytes} bytes)`;
  if (bytes.length < expectedBytes) {
    return fail(
      'truncated',
      `Expected ${described} in ${source} as its header says, got ${bytes.length} bytes; the file is truncated`,
    );
  }
  if (bytes.length > expectedBytes) {
    return fail(
      'bad-dataset',
      `Expected ${described} in ${source} as its header says, got ${bytes.length - expectedBytes} bytes more`,
    );
  }
  let data: IdxData;
  if (dataType === 'uint8') {
    data = new Uint8Array(bytes.buffer, bytes.byteOffset + headerBytes, length);
  } else if (dataType === 'int8') {
    data = new Int8Array(bytes.buffer, bytes.byteOffset + headerBytes, length);
  } else {
    data = type.make(length);
    for (let i = 0; i < length; i++) data[i] = type.read(view, headerBytes + i * type.bytes);
  }
  return ok({ dataType, dims, data });
}

/**
 * Encodes an array as IDX bytes (uncompressed); `parseIdx(encodeIdx(a))` gives back `a`.
 * Inconsistent `dims` and `data` are a caller bug and throw a RangeError.
 */
export function encodeIdx(array: IdxArray): Uint8Array {
  const type: TypeInfo = TYPES[array.dataType];
  const length = array.dims.reduce((product, dim) => product * dim, 1);
  if (length !== array.data.length || array.dims.length === 0 || array.dims.length > 255) {
    throw new RangeError(`encodeIdx: dims ${array.dims.join('x')} do not fit ${array.data.length} elements`);
  }
  const headerBytes = 4 + 4 * array.dims.length;
  const bytes = new Uint8Array(headerBytes + length * type.bytes);
  const view = new DataView(bytes.buffer);
  view.setUint8(2, type.code);
  view.setUint8(3, array.dims.length);
  array.dims.forEach((dim, d) => view.setUint32(4 + 4 * d, dim, false));
  let offset = headerBytes;
  for (const value of array.data) {
    type.write(view, offset, value);
    offset += type.bytes;
  }
  return bytes;
}

/**
 * Reads and decodes an IDX file, gzip-compressed or not (detected by content). A gzip file is
 * decompressed only as far as its header promises (and at most {@link MAX_DATA_BYTES}), so a
 * small file that expands to gigabytes is refused with little memory spent.
 */
export function readIdxFile(path: string, what = 'IDX file'): Result<IdxArray> {
  const raw = readFileBytes(path, what);
  if (!raw.ok) return raw;
  if (!isGzip(raw.value)) return parseIdx(raw.value, path);
  const start = gunzipPrefix(raw.value, path);
  if (!start.ok) return start;
  const header = parseIdxHeader(start.value, path);
  // A header cut short by the prefix alone (not by the file's end) is decompressed in full
  // below, within the general limit, and parseIdx then judges it.
  let limit = MAX_DATA_BYTES;
  let limitText: string | undefined;
  if (header.ok) {
    const { dims, dataType, expectedBytes } = header.value;
    const described = `${dims.join('x')} ${dataType} (${expectedBytes} bytes)`;
    if (expectedBytes > MAX_DATA_BYTES) {
      return fail(
        'bad-dataset',
        `Expected the ${what} ${path} to hold at most ${formatBytes(MAX_DATA_BYTES)}, but its header promises ${described}; it is damaged or not the right file`,
      );
    }
    // One byte more than promised, so that parseIdx reports a few trailing bytes as such.
    limit = expectedBytes + 1;
    limitText = `the ${expectedBytes} bytes its IDX header promises (${dims.join('x')} ${dataType})`;
  } else if (header.reason !== 'truncated') return header;
  const bytes = gunzipIfCompressed(raw.value, path, limit, limitText);
  return bytes.ok ? parseIdx(bytes.value, path) : bytes;
}

/** Options of {@link datasetFromIdx} and {@link loadIdxDataset}. */
export interface IdxDatasetOptions {
  /**
   * Size of the label space. Default: the largest label + 1, which undercounts when the top
   * classes are absent from the file; pass it when known.
   */
  readonly numClasses?: number;
}

/**
 * Pairs a decoded images array (uint8, count x height x width) with a labels array (uint8,
 * count) as a one-channel {@link Dataset}.
 *
 * @param paths - The files they came from, for the messages.
 */
export function datasetFromIdx(
  images: IdxArray,
  labels: IdxArray,
  paths: { readonly images: string; readonly labels: string },
  options: IdxDatasetOptions = {},
): Result<Dataset> {
  const [count, height, width] = images.dims;
  if (
    !(images.data instanceof Uint8Array) ||
    images.dims.length !== 3 ||
    count === undefined ||
    height === undefined ||
    width === undefined
  ) {
    return fail(
      'bad-dataset',
      `Expected IDX images of uint8 with 3 dims (count x height x width) in ${paths.images}, got ${images.dataType} with dims ${images.dims.join('x')}`,
    );
  }
  if (!(labels.data instanceof Uint8Array) || labels.dims.length !== 1) {
    return fail(
      'bad-dataset',
      `Expected IDX labels of uint8 with 1 dim in ${paths.labels}, got ${labels.dataType} with dims ${labels.dims.join('x')}`,
    );
  }
  if (labels.data.length !== count) {
    return fail(
      'bad-dataset',
      `Expected as many labels as images, got ${count} images in ${paths.images} and ${labels.data.length} labels in ${paths.labels}`,
    );
  }
  const numClasses = options.numClasses ?? labels.data.reduce((max, label) => Math.max(max, label), 0) + 1;
  return createDataset(
    {
      images: images.data,
      labels: labels.data,
      count,
      channels: 1,
      height,
      width,
      numClasses,
    },
    `${paths.images} + ${paths.labels}`,
  );
}

/** Loads an MNIST-style pair of IDX files (each plain or gzip) as a {@link Dataset}. */
export function loadIdxDataset(
  imagesPath: string,
  labelsPath: string,
  options: IdxDatasetOptions = {},
): Result<Dataset> {
  const images = readIdxFile(imagesPath, 'IDX images file');
  if (!images.ok) return images;
  const labels = readIdxFile(labelsPath, 'IDX labels file');
  if (!labels.ok) return labels;
  return datasetFromIdx(images.value, labels.value, { images: imagesPath, labels: labelsPath }, options);
}
