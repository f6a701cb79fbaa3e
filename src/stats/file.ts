/** @file Statistics files: named accumulators <-> bytes (JSON header + float64 LE), and shard sums. */
import { fail, ok, type Result } from '../errors.js';
import { allFinite } from '../tensor/finite.js';
import { CovarianceAccumulator } from './covariance.js';

/** The accumulators of a model set, one per feature space id, in a stable order. */
export type StatisticsSet = ReadonlyMap<string, CovarianceAccumulator>;

/** Encoded statistics with a label (usually the path) that failure messages name. */
export interface StatisticsFileBytes {
  readonly label: string;
  readonly bytes: Uint8Array;
}

/** A decoded statistics set with a label (usually the path) that failure messages name. */
export interface LabeledStatistics {
  readonly label: string;
  readonly statistics: StatisticsSet;
}

const MAGIC = 'ZIPSTATS';
const VERSION = 1;
/** Magic (8 bytes), version (u32 LE), header byte length (u32 LE). */
const PREAMBLE_BYTES = 16;

interface HeaderSpace {
  id: string;
  numModels: number;
  width: number;
  count: number;
}

/**
 * Encodes `statistics` as one file: `ZIPSTATS`, u32 version, u32 header length, a JSON header
 * `{format, version, spaces: [{id, numModels, width, count}]}` padded with spaces to a multiple
 * of 8 bytes, then per space in header order shift (Kn), sum (Kn) and gram (Kn x Kn, row-major)
 * as float64 little-endian. Callers write the bytes (atomically: temp file + rename).
 */
export function encodeStatistics(statistics: StatisticsSet): Uint8Array {
  const spaces: HeaderSpace[] = [];
  let values = 0;
  for (const [id, acc] of statistics) {
    spaces.push({ id, numModels: acc.numModels, width: acc.width, count: acc.count });
    values += 2 * acc.size + acc.size * acc.size;
  }
  let header = new TextEncoder().encode(
    JSON.stringify({ format: 'zipit-statistics', version: VERSION, spaces }),
  );
  const padded = Math.ceil((PREAMBLE_BYTES + header.length) / 8) * 8 - PREAMBLE_BYTES;
  if (padded !== header.length) {
    const withPadding = new Uint8Array(padded).fill(0x20);
    withPadding.set(header);
    header = withPadding;
  }
  const bytes = new Uint8Array(PREAMBLE_BYTES + header.length + values * 8);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, header.length, true);
  bytes.set(header, PREAMBLE_BYTES);
  let offset = PREAMBLE_BYTES + header.length;
  for (const acc of statistics.values()) {
    const state = acc.state();
    for (const array of [state.shift, state.sum, state.gram]) {
      for (let i = 0; i < array.length; i++) view.setFloat64(offset + 8 * i, array[i]!, true);
      offset += 8 * array.length;
    }
  }
  return bytes;
}

/**
 * Decodes {@link encodeStatistics}'s bytes. A truncated, padded or garbled file is a
 * 'bad-statistics' Failure naming `label` and what is wrong; decoding never throws.
 */
export function decodeStatistics(
  bytes: Uint8Array,
  label = 'statistics file',
): Result<StatisticsSet> {
  const bad = (what: string): Result<StatisticsSet> =>
    fail('bad-statistics', `Expected ${label} to be a zipit statistics file, but ${what}`);
  if (bytes.length < PREAMBLE_BYTES) return bad(`it has only ${bytes.length} bytes (truncated)`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC)
    return bad(`it does not start with ${MAGIC}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION)
    return bad(`it has format version ${version}; this build reads version ${VERSION}`);
  const headerLength = view.getUint32(12, true);
  if (PREAMBLE_BYTES + headerLength > bytes.length) return bad('its header is cut off (truncated)');
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(16, 16 + headerLength)),
    );
  } catch {
    return bad('its header is not valid JSON');
  }
  const spaces = parseHeaderSpaces(header);
  if (typeof spaces === 'string') return bad(spaces);
  let offset = PREAMBLE_BYTES + headerLength;
  const expected = spaces.reduce((total, s) => {
    const size = s.numModels * s.width;
    return total + (2 * size + size * size) * 8;
  }, offset);
  if (bytes.length !== expected) {
    const how = bytes.length < expected ? 'truncated' : 'trailing bytes';
    return bad(`its header promises ${expected} bytes and it has ${bytes.length} (${how})`);
  }
  const read = (length: number): Float64Array => {
    const values = new Float64Array(length);
    for (let i = 0; i < length; i++) values[i] = view.getFloat64(offset + 8 * i, true);
    offset += 8 * length;
    return values;
  };
  const statistics = new Map<string, CovarianceAccumulator>();
  for (const space of spaces) {
    const size = space.numModels * space.width;
    const shift = read(size);
    const sum = read(size);
    const gram = read(size * size);
    if (!(allFinite(shift) && allFinite(sum) && allFinite(gram))) {
      return bad(`space '${space.id}' holds non-finite values`);
    }
    const acc = CovarianceAccumulator.fromState({ ...space, shift, sum, gram });
    if (!acc.ok) return bad(`space '${space.id}' is inconsistent: ${acc.message}`);
    statistics.set(space.id, acc.value);
  }
  return ok(statistics);
}

/**
 * Adds shards of statistics over disjoint data: the result is what one pass over all of it
 * gives. Every shard must hold the same space ids with the same K and widths; otherwise a
 * 'bad-statistics' Failure names the first mismatch. Inputs are not modified.
 */
export function sumStatistics(shards: readonly LabeledStatistics[]): Result<StatisticsSet> {
  const first = shards[0];
  if (first === undefined)
    return fail('bad-statistics', 'Expected at least one statistics shard, got none');
  const total = new Map<string, CovarianceAccumulator>();
  for (const [id, acc] of first.statistics) total.set(id, acc.clone());
  for (const shard of shards.slice(1)) {
    for (const id of shard.statistics.keys()) {
      if (!total.has(id)) {
        return fail(
          'bad-statistics',
          `Expected ${shard.label} to hold the spaces of ${first.label}; it has an extra space '${id}'`,
        );
      }
    }
    for (const [id, acc] of total) {
      const other = shard.statistics.get(id);
      if (other === undefined) {
        return fail(
          'bad-statistics',
          `Expected ${shard.label} to hold the spaces of ${first.label}; space '${id}' is missing`,
        );
      }
      if (other.numModels !== acc.numModels || other.width !== acc.width) {
        return fail(
          'bad-statistics',
          `Expected space '${id}' in ${shard.label} to have ${acc.numModels} models x ${acc.width} channels like ${first.label}, got ${other.numModels} x ${other.width}`,
        );
      }
      const combined = acc.combine(other);
      if (!combined.ok) return combined;
    }
  }
  return ok(total);
}

/** Decodes each file and sums them with {@link sumStatistics}; the first failure wins. */
export function sumStatisticsFiles(files: readonly StatisticsFileBytes[]): Result<StatisticsSet> {
  const shards: LabeledStatistics[] = [];
  for (const file of files) {
    const statistics = decodeStatistics(file.bytes, file.label);
    if (!statistics.ok) return statistics;
    shards.push({ label: file.label, statistics: statistics.value });
  }
  return sumStatistics(shards);
}

/** The header's spaces, or a description of what is wrong with them. */
function parseHeaderSpaces(header: unknown): HeaderSpace[] | string {
  if (typeof header !== 'object' || header === null) return 'its header is not an object';
  const { format, spaces } = header as { format?: unknown; spaces?: unknown };
  if (format !== 'zipit-statistics') return `its header's format is ${JSON.stringify(format)}`;
  if (!Array.isArray(spaces)) return "its header has no 'spaces' list";
  const seen = new Set<string>();
  const parsed: HeaderSpace[] = [];
  for (const [i, entry] of (spaces as unknown[]).entries()) {
    const { id, numModels, width, count } = (entry ?? {}) as Record<string, unknown>;
    const positive = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
    if (typeof id !== 'string' || seen.has(id)) return `space ${i} has a missing or repeated id`;
    if (
      !positive(numModels) ||
      !positive(width) ||
      !Number.isSafeInteger(numModels * width * numModels * width)
    ) {
      return `space '${id}' has bad numModels ${String(numModels)} or width ${String(width)}`;
    }
    if (!Number.isSafeInteger(count) || (count as number) < 0)
      return `space '${id}' has a bad count ${String(count)}`;
    seen.add(id);
    parsed.push({ id, numModels, width, count: count as number });
  }
  return parsed;
}
