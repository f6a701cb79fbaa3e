/**
 * @file File identity (real path, device and inode) and the one check, used for every path
 * the tool writes, that an output is not one of the command's inputs.
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fail, ok, type Result } from '../errors.js';

/** What makes two paths the same file. */
export interface FileIdentity {
  /** The absolute path with every symbolic link resolved (for a path not there yet: its nearest existing folder's). */
  readonly realPath: string;
  /** Device and inode when the file exists: equal for two hard links to one file. */
  readonly device?: number;
  readonly inode?: number;
}

/**
 * The identity of `path`, which need not exist. For a missing file the nearest existing
 * folder is resolved and the rest of the path appended, so `palias/a.onnx` (with `palias` a
 * symlink to `p`) is `p/a.onnx` before it is written. A path that cannot be resolved (a
 * symlink loop, a file used as a folder) keeps its absolute form; writing it fails later with
 * a message of its own.
 */
export function fileIdentity(path: string): FileIdentity {
  const absolute = resolve(path);
  try {
    const realPath = realpathSync(absolute);
    const stats = statSync(realPath);
    return { realPath, device: stats.dev, inode: stats.ino };
  } catch {
    // Not there (or not resolvable): resolve the nearest existing folder instead.
  }
  const rest = [basename(absolute)];
  let folder = dirname(absolute);
  for (;;) {
    try {
      return { realPath: join(realpathSync(folder), ...rest) };
    } catch {
      const parent = dirname(folder);
      if (parent === folder) return { realPath: absolute };
      rest.unshift(basename(folder));
      folder = parent;
    }
  }
}

/** True when two identities name one file: same real path, or same device and inode. */
export function isSameFile(a: FileIdentity, b: FileIdentity): boolean {
  if (a.realPath === b.realPath) return true;
  return a.device !== undefined && a.device === b.device && a.inode === b.inode;
}

/**
 * Fails when writing `output` would replace one of `inputs` (every file the command reads:
 * models, data files, statistics files; for a report also --out): the same path, or the same
 * file through a symbolic link (of the file or of a folder on its path) or a hard link.
 *
 * @param flag - The option that named `output`, for the advice (`--out`, `--report`).
 */
export function checkNotAnInput(
  output: string,
  inputs: readonly string[],
  flag = '--out',
): Result<void> {
  const target = fileIdentity(output);
  for (const input of inputs) {
    if (resolve(input) === resolve(output)) {
      return fail(
        'unwritable-output',
        `Output path ${output} is one of the inputs; choose another ${flag}.`,
      );
    }
    if (isSameFile(fileIdentity(input), target)) {
      return fail(
        'unwritable-output',
        `Output path ${output} is the same file as input ${input} (via a symlink or hard link); choose another ${flag}.`,
      );
    }
  }
  return ok(undefined);
}
