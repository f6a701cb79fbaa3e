/** @file Reading dataset files into memory, with gzip detected by content and errors as Failures. */

import { constants, gunzipSync } from 'node:zlib';
import { errorFirstLine, fail, ok, type Result } from '../errors.js';
import {
  errorCode,
  formatBytes,
  MAX_DATA_BYTES,
  readRegularFile,
} from '../files/regular-file.js';

/**
 * Reads a whole regular file of at most `maxBytes` (a FIFO, device or directory is refused
 * before it is opened).
 *
 * @param what - What the file should be, for the message, e.g. `'IDX labels file'`.
 * @param maxBytes - The size limit; default {@link MAX_DATA_BYTES}.
 */
export function readFileBytes(
  path: string,
  what: string,
  maxBytes = MAX_DATA_BYTES,
): Result<Uint8Array> {
  return readRegularFile(path, what, maxBytes);
}

/** True when `bytes` start with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses `bytes` if they are gzip, else returns them as they are. Detection is by the
 * magic number rather than the `.gz` suffix, so a renamed file still loads. Decompression
 * stops (a Failure) past `maxBytes`, so a gzip bomb costs at most that much memory.
 *
 * @param source - The file's path, for the message.
 * @param maxBytes - The most the content may decompress to; default {@link MAX_DATA_BYTES}.
 * @param limitText - The limit in words for the message, e.g. `'the 7,856 bytes its IDX header promises'`.
 */
export function gunzipIfCompressed(
  bytes: Uint8Array,
  source: string,
  maxBytes = MAX_DATA_BYTES,
  limitText = `the ${formatBytes(maxBytes)} limit of a dataset file`,
): Result<Uint8Array> {
  if (!isGzip(bytes)) return ok(bytes);
  try {
    const buffer = gunzipSync(bytes, { maxOutputLength: maxBytes });
    return ok(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
  } catch (error: unknown) {
    const detail = errorFirstLine(error);
    if (errorCode(error) === 'ERR_BUFFER_TOO_LARGE') {
      return fail(
        'bad-dataset',
        `${source} decompresses to more than ${limitText}; it is damaged or not the right file`,
      );
    }
    if (errorCode(error) === 'Z_BUF_ERROR') {
      return fail('truncated', `${source} is a truncated gzip file (${detail}); fetch it again`);
    }
    return fail('bad-dataset', `${source} starts like gzip (1f 8b) but does not decompress: ${detail}`);
  }
}

/**
 * The first bytes of a gzip file's content, decompressing only a prefix of it: enough to read
 * a header that says how long the whole content is before decompressing it.
 *
 * NOTE: deflate expands at most about 1032 times, so the 4 KiB prefix yields at most about
 * 4 MB, even from a bomb; a real file's first 4 KiB yield far more than an IDX header
 * (at most 1,024 bytes).
 */
export function gunzipPrefix(bytes: Uint8Array, source: string): Result<Uint8Array> {
  try {
    // Z_SYNC_FLUSH: return what the truncated prefix decodes to instead of failing on its end.
    const buffer = gunzipSync(bytes.subarray(0, 4096), { finishFlush: constants.Z_SYNC_FLUSH });
    return ok(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
  } catch (error: unknown) {
    const detail = errorFirstLine(error);
    return fail('bad-dataset', `${source} starts like gzip (1f 8b) but does not decompress: ${detail}`);
  }
}

/** Reads a file and decompresses it if it is gzip (to at most {@link MAX_DATA_BYTES}). */
export function readMaybeGzip(path: string, what: string): Result<Uint8Array> {
  const bytes = readFileBytes(path, what);
  return bytes.ok ? gunzipIfCompressed(bytes.value, path) : bytes;
}
