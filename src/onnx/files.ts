/** @file Reading model files and writing any output atomically (temporary file, then rename). */
import {
  accessSync,
  chmodSync,
  constants,
  mkdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  statSync,
  type Stats,
} from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail, ok, type Result } from '../errors.js';
import { checkNotAnInput } from '../files/identity.js';
import { describeFileType, MAX_MODEL_BYTES, readRegularFile } from '../files/regular-file.js';
import { registerTemporaryFile, releaseTemporaryFile } from '../files/temporary-files.js';
import { writeFailure } from '../files/write-errors.js';
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

/** How an output is checked and written. */
export interface OutputOptions {
  /** The option that named the path, for the advice in messages; default `--out`. */
  readonly flag?: string;
  /**
   * Create the missing folders of the path (as `--report` does). They are created only by the
   * write, so a command that fails first leaves no empty folders behind.
   */
  readonly createFolders?: boolean;
}

/**
 * Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
 * failure never leaves a half-written output. Refuses to replace any file of `protect` (the
 * command's inputs), by path, symbolic link or hard link. A replaced file keeps its mode.
 */
export function writeFileAtomic(
  path: string,
  bytes: Uint8Array | string,
  protect: readonly string[] = [],
  options: OutputOptions = {},
): Result<void> {
  // Checked again here, not only before the work: every write goes through the protection.
  const checked = checkOutputPath(path, protect, options);
  if (!checked.ok) return checked;
  const target = resolve(path);
  const flag = options.flag ?? '--out';
  let existing: Stats | undefined;
  try {
    if (options.createFolders) mkdirSync(dirname(target), { recursive: true });
    existing = statSync(target, { throwIfNoEntry: false });
  } catch (error: unknown) {
    return writeFailure(path, error, flag);
  }
  // Recognisable by its `.zipit-tmp` suffix: SIGKILL cannot be caught, so a kill -9 between
  // the write and the rename still leaves one behind for the user to delete.
  const temporary = join(
    dirname(target),
    `.${basename(target)}.${randomBytes(6).toString('hex')}.zipit-tmp`,
  );
  registerTemporaryFile(temporary);
  try {
    // 'wx': never follow or reuse something already at the temporary name.
    writeFileSync(temporary, bytes, { flag: 'wx' });
    // rename() replaces the old file with the new inode, whose mode comes from the umask;
    // a user who made the output private (0600) expects it to stay so.
    if (existing !== undefined) chmodSync(temporary, existing.mode & 0o7777);
    renameSync(temporary, target);
    return ok(undefined);
  } catch (error: unknown) {
    try {
      rmSync(temporary, { force: true });
    } catch {
      // The folder itself is the problem (reported below); there is no file to remove.
    }
    return writeFailure(path, error, flag);
  } finally {
    releaseTemporaryFile(temporary);
  }
}

/** Encodes and atomically writes a model. */
export function writeModelFile(
  path: string,
  model: Model,
  protect: readonly string[] = [],
  options: OutputOptions = {},
): Result<void> {
  return writeFileAtomic(path, encodeModel(model), protect, options);
}

/**
 * Checks before any work that `path` can be written: not one of `protect` (the inputs, also
 * through symbolic or hard links), not a directory or a device, in an existing writable folder
 * (or, with `createFolders`, under one). Creates nothing; the write itself stays atomic.
 */
export function checkOutputPath(
  path: string,
  protect: readonly string[] = [],
  options: OutputOptions = {},
): Result<void> {
  const flag = options.flag ?? '--out';
  const notInput = checkNotAnInput(path, protect, flag);
  if (!notInput.ok) return notInput;
  const target = resolve(path);
  try {
    const stats = statSync(target, { throwIfNoEntry: false });
    if (stats?.isDirectory()) {
      return fail('unwritable-output', `Output path ${path} is a directory; give a file name.`);
    }
    if (stats !== undefined && !stats.isFile()) {
      return fail(
        'unwritable-output',
        `Output path ${path} is ${describeFileType(stats)}; give the name of a regular file.`,
      );
    }
    let folder = dirname(target);
    if (options.createFolders) {
      // The folders are made by the write; here the nearest existing one must be writable.
      while (statSync(folder, { throwIfNoEntry: false }) === undefined) {
        if (dirname(folder) === folder) break;
        folder = dirname(folder);
      }
    }
    accessSync(folder, constants.W_OK);
  } catch (error: unknown) {
    return writeFailure(path, error, flag);
  }
  return ok(undefined);
}
