/** @file Reading dataset files into memory, with gzip detected by content and errors as Failures. */

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fail, ok, type Result } from '../errors.js';

/** The Node error code (`'ENOENT'`, `'Z_BUF_ERROR'`, ...) of a thrown error, if it has one. */
function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

/**
 * Reads a whole file.
 *
 * @param what - What the file should be, for the message, e.g. `'IDX labels file'`.
 */
export function readFileBytes(path: string, what: string): Result<Uint8Array> {
  try {
    const buffer = readFileSync(path);
    return ok(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
  } catch (error: unknown) {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return fail('file-not-found', `Expected the ${what} at ${path}, but there is no such file`);
    }
    const detail = error instanceof Error ? error.message : String(error);
    return fail('file-unreadable', `Cannot read the ${what} at ${path}: ${detail}`);
  }
}

/** True when `bytes` start with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses `bytes` if they are gzip, else returns them as they are. Detection is by the
 * magic number rather than the `.gz` suffix, so a renamed file still loads.
 *
 * @param source - The file's path, for the message.
 */
export function gunzipIfCompressed(bytes: Uint8Array, source: string): Result<Uint8Array> {
  if (!isGzip(bytes)) return ok(bytes);
  try {
    const buffer = gunzipSync(bytes);
    return ok(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
  } catch (error: unknown) {
    const detail = error instanceof Error ? error.message : String(error);
    if (errorCode(error) === 'Z_BUF_ERROR') {
      return fail('truncated', `${source} is a truncated gzip file (${detail}); fetch it again`);
    }
    return fail('bad-dataset', `${source} starts like gzip (1f 8b) but does not decompress: ${detail}`);
  }
}

/** Reads a file and decompresses it if it is gzip. */
export function readMaybeGzip(path: string, what: string): Result<Uint8Array> {
  const bytes = readFileBytes(path, what);
  return bytes.ok ? gunzipIfCompressed(bytes.value, path) : bytes;
}
