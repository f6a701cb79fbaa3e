/**
 * @file Reading an input file safely: regular files only, within a size limit, so that a FIFO
 * cannot block `open()` forever and `/dev/zero` or a huge file cannot exhaust memory.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { errorFirstLine, fail, ok, type Result } from '../errors.js';

const GIB = 2 ** 30;

/**
 * The largest model file read.
 *
 * NOTE: 2 GiB is protobuf's own limit on a ModelProto (bigger models must keep their weights
 * in external data, which we refuse anyway), and `readFileSync`, which read models before,
 * refused files over 2 GiB too; no model that loaded before is refused now.
 */
export const MAX_MODEL_BYTES = 2 * GIB;

/**
 * The largest dataset file read (IDX, CIFAR-10 batch), and the largest an IDX file may
 * decompress to.
 *
 * NOTE: the datasets are held in memory whole; 2 GiB is 40 times Fashion-MNIST's training
 * images (47 MB) and 60 times a CIFAR-10 batch (30 MB), and `readFileSync` refused larger
 * files before. A user never hits it; a gzip bomb or a wrong file does.
 */
export const MAX_DATA_BYTES = 2 * GIB;

/**
 * The largest statistics file read.
 *
 * NOTE: `readFileSync` refused statistics files over 2 GiB before, so this refuses nothing
 * that loaded; a space of 16,000 merged channels already needs 2 GiB of covariance.
 */
export const MAX_STATISTICS_BYTES = 2 * GIB;

/** A byte count for messages: `3.0 GiB`, `14.2 MB`, `512 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${bytes} bytes`;
}

/** What a path that is not a regular file is, for messages: `a FIFO (named pipe)`. */
export function describeFileType(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** The Node error code (`'ENOENT'`, `'ELOOP'`, ...) of a thrown error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string')
    return error.code;
  return undefined;
}

/** Why reading a path failed, in words, for the errors a user causes; undefined for others. */
function readErrorReason(code: string | undefined): string | undefined {
  switch (code) {
    case 'ELOOP':
      return 'ELOOP, the path goes round a loop of symbolic links';
    case 'ENAMETOOLONG':
      return 'ENAMETOOLONG, the name is too long for the file system';
    case 'EACCES':
    case 'EPERM':
      return `${code}, permission denied`;
    default:
      return undefined;
  }
}

function notRegular(path: string, what: string, stats: Stats): Result<never> {
  if (stats.isDirectory()) {
    return fail(
      'file-unreadable',
      `Cannot read the ${what} at ${path}: EISDIR, it is a directory; give a file.`,
    );
  }
  return fail(
    'file-unreadable',
    `Cannot read the ${what} at ${path}: it is ${describeFileType(stats)}, not a regular file; give a file.`,
  );
}

function tooLarge(path: string, what: string, size: number, maxBytes: number): Result<never> {
  return fail(
    'file-unreadable',
    `Cannot read the ${what} at ${path}: it is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} limit; is it the right file?`,
  );
}

/**
 * Reads a whole regular file of at most `maxBytes`. A missing path is a 'file-not-found'
 * Failure (`Expected the <what> at <path>, but there is no such file`); a directory, FIFO,
 * socket or device, a file over the limit, or an unreadable path is 'file-unreadable'.
 *
 * @param what - What the file should be, for the message, e.g. `'IDX labels file'`.
 */
export function readRegularFile(path: string, what: string, maxBytes: number): Result<Uint8Array> {
  const failed = (error: unknown): Result<never> => {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return fail('file-not-found', `Expected the ${what} at ${path}, but there is no such file`);
    }
    const detail = readErrorReason(code) ?? errorFirstLine(error);
    return fail('file-unreadable', `Cannot read the ${what} at ${path}: ${detail}`);
  };
  // stat BEFORE open: open() of a FIFO blocks until a writer appears, which may be never.
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error: unknown) {
    return failed(error);
  }
  if (!stats.isFile()) return notRegular(path, what, stats);
  if (stats.size > maxBytes) return tooLarge(path, what, stats.size, maxBytes);
  let fd: number;
  try {
    // O_NONBLOCK in case the path was swapped for a FIFO since the stat: open() then returns
    // at once, and the fstat below refuses it. It changes nothing for a regular file.
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error: unknown) {
    return failed(error);
  }
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) return notRegular(path, what, opened);
    if (opened.size > maxBytes) return tooLarge(path, what, opened.size, maxBytes);
    const bytes = new Uint8Array(opened.size);
    let offset = 0;
    while (offset < bytes.length) {
      const read = readSync(fd, bytes, offset, bytes.length - offset, null);
      if (read === 0) break;
      offset += read;
    }
    return ok(offset === bytes.length ? bytes : bytes.subarray(0, offset));
  } catch (error: unknown) {
    return failed(error);
  } finally {
    closeSync(fd);
  }
}
