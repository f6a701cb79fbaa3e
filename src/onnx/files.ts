/** @file Reading model files and writing any output atomically (temporary file, then rename). */
import { accessSync, constants, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail, ok, type Result } from '../errors.js';
import { MAX_MODEL_BYTES, readRegularFile } from '../files/regular-file.js';
import { decodeModel, encodeModel, type Model } from './model.js';

/**
 * Reads and decodes an ONNX file; every failure names the path. Only a regular file of at
 * most {@link MAX_MODEL_BYTES} is opened (a FIFO would block, `/dev/zero` would never end).
 */
export function readModelFile(path: string): Result<Model> {
  const bytes = readRegularFile(path, 'model file', MAX_MODEL_BYTES);
  if (!bytes.ok) {
    return bytes.reason === 'file-not-found'
      ? fail('file-not-found', `Model file not found: ${path}`)
      : bytes;
  }
  const model = decodeModel(bytes.value);
  if (!model.ok) return fail(model.reason, `${path}: ${model.message}`);
  return model;
}

/**
 * Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
 * failure never leaves a half-written output. Refuses to overwrite any path in `protect`
 * (e.g. the input models).
 */
export function writeFileAtomic(
  path: string,
  bytes: Uint8Array | string,
  protect: readonly string[] = [],
): Result<void> {
  const target = resolve(path);
  if (protect.some((p) => resolve(p) === target)) {
    return fail(
      'unwritable-output',
      `Output path ${path} is one of the inputs; choose another --out.`,
    );
  }
  try {
    if (statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
      return fail('unwritable-output', `Output path ${path} is a directory; give a file name.`);
    }
  } catch {
    // A path we cannot even stat is reported by the write below.
  }
  const temporary = join(
    dirname(target),
    `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    writeFileSync(temporary, bytes);
    renameSync(temporary, target);
    return ok(undefined);
  } catch (error: unknown) {
    rmSync(temporary, { force: true });
    const code = (error as { code?: string }).code ?? String(error);
    return fail(
      'unwritable-output',
      `Cannot write ${path} (${code}); check that its folder exists and is writable.`,
    );
  }
}

/** Encodes and atomically writes a model. */
export function writeModelFile(
  path: string,
  model: Model,
  protect: readonly string[] = [],
): Result<void> {
  return writeFileAtomic(path, encodeModel(model), protect);
}

/**
 * Checks before any work that `path` can be written: not one of `protect` (the inputs), not a
 * directory, in an existing writable folder. The write itself stays atomic.
 */
export function checkOutputPath(path: string, protect: readonly string[] = []): Result<void> {
  const target = resolve(path);
  if (protect.some((p) => resolve(p) === target)) {
    return fail(
      'unwritable-output',
      `Output path ${path} is one of the inputs; choose another --out.`,
    );
  }
  if (statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
    return fail('unwritable-output', `Output path ${path} is a directory; give a file name.`);
  }
  try {
    accessSync(dirname(target), constants.W_OK);
  } catch (error: unknown) {
    const code = (error as { code?: string }).code ?? String(error);
    return fail(
      'unwritable-output',
      `Cannot write ${path} (${code}); check that its folder exists and is writable.`,
    );
  }
  return ok(undefined);
}
