/**
 * @file The registry of temporary files that exist right now (an output being written before
 * its rename), so that the CLI can remove them when SIGINT or SIGTERM stops it. Library code
 * never touches `process`; src/cli/main.ts installs the signal handlers.
 */
import { rmSync } from 'node:fs';

const live = new Set<string>();
let onFirst: (() => void) | undefined;

/**
 * Calls `listener` once, when the first temporary file is registered. The CLI installs its
 * signal handlers then rather than at start-up, because a handler delays Ctrl-C until the
 * JavaScript thread is free, which a long synchronous matching step would make slow.
 */
export function onFirstTemporaryFile(listener: () => void): void {
  onFirst = listener;
}

/** Records that `path` exists and must not outlive the process. */
export function registerTemporaryFile(path: string): void {
  live.add(path);
  const listener = onFirst;
  onFirst = undefined;
  listener?.();
}

/** Forgets `path` (it was renamed to the output, or removed). */
export function releaseTemporaryFile(path: string): void {
  live.delete(path);
}

/** The temporary files registered and not yet released. */
export function liveTemporaryFiles(): string[] {
  return [...live];
}

/** Removes every live temporary file (best effort: a file already gone is fine); returns their paths. */
export function removeTemporaryFiles(): string[] {
  const removed = [...live];
  for (const path of removed) {
    try {
      rmSync(path, { force: true });
    } catch {
      // Best effort during shutdown: a folder made read-only meanwhile must not stop the exit.
    }
    live.delete(path);
  }
  return removed;
}
