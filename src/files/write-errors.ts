/** @file The user's path mistakes on output (a file used as a folder, a full disk, ...) as one-line Failures. */
import { fail, type Result } from '../errors.js';
import { errorCode } from './regular-file.js';

/**
 * A Failure for an error thrown while checking or writing the output `path`: the mistakes a
 * user makes (ENOTDIR, ELOOP, ENAMETOOLONG, ENOSPC, ...) become 'unwritable-output' messages
 * naming the path and what to do, never an internal error.
 *
 * @param flag - The option that named the path, for the advice (`--out`, `--report`).
 */
export function writeFailure(path: string, error: unknown, flag = '--out'): Result<never> {
  const code = errorCode(error) ?? String(error);
  const say = (why: string): Result<never> =>
    fail('unwritable-output', `Cannot write ${path} (${code}): ${why}.`);
  switch (code) {
    case 'ENOTDIR':
      return say(`a part of its folder path is a file, not a folder; choose another ${flag}`);
    case 'ELOOP':
      return say(
        `its path goes round a loop of symbolic links; fix the links or choose another ${flag}`,
      );
    case 'ENAMETOOLONG':
      return say(`the name is too long for the file system; choose a shorter ${flag}`);
    case 'ENOSPC':
      return say(`the disk is full; free some space or choose another ${flag}`);
    case 'EDQUOT':
      return say(`the disk quota is used up; free some space or choose another ${flag}`);
    case 'EROFS':
      return say(`the file system is read-only; choose another ${flag}`);
    case 'EISDIR':
      return say(`it is a directory; give a file name`);
    default:
      // Kept word for word: scripts and tests match the ENOENT and EACCES form.
      return fail(
        'unwritable-output',
        `Cannot write ${path} (${code}); check that its folder exists and is writable.`,
      );
  }
}
