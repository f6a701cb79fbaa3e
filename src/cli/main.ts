#!/usr/bin/env node
/** @file The `zipit` command line: the only file that sets the exit code. */
import { Command, CommanderError } from 'commander';
import { errorFirstLine } from '../errors.js';
import { onFirstTemporaryFile, removeTemporaryFiles } from '../files/temporary-files.js';
import type { CliIo, CommandBody } from './command.js';
import { registerCommands } from './commands.js';
import { processIo } from './common.js';
import { printable } from './printable.js';

/**
 * On SIGINT or SIGTERM, removes the temporary file of an output being written, then exits
 * with 128 + the signal's number, as a shell reports a process the signal killed. Installed
 * when the first temporary file appears, not at start-up: a JavaScript handler runs only when
 * the thread is free, so before any output is written Ctrl-C keeps its immediate default.
 * Once installed, a signal that arrives during a (synchronous) write waits for its rename, so
 * the output is whole or absent. SIGKILL cannot be caught: it may leave a `.zipit-tmp` file.
 */
function removeTemporaryFilesOnSignals(): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      removeTemporaryFiles();
      process.exit(code);
    });
  }
}

/** Runs a command body, printing a Failure as one line; returns the exit code. */
async function runBody(io: CliIo, body: CommandBody, debug: boolean): Promise<number> {
  try {
    const result = await body();
    if (result.ok) return 0;
    io.err(`zipit: error: ${printable(result.message)}`);
    return 1;
  } catch (error: unknown) {
    // Our bug, not the user's: one line unless --debug asks for the stack.
    io.err(
      `zipit: internal error: ${printable(errorFirstLine(error))} (rerun with --debug for details)`,
    );
    if (debug && error instanceof Error && error.stack) io.err(error.stack);
    return 70;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  // A closed pipe (`zipit inspect m.onnx | head`) is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
  });
  onFirstTemporaryFile(removeTemporaryFilesOnSignals);
  const io = processIo();
  const debug = argv.includes('--debug');
  let exitCode = 0;
  const program = new Command('zipit')
    .description('Merge models trained on different tasks into one, without training (ZipIt!).')
    .option('--debug', 'print stack traces of internal errors')
    .exitOverride()
    .configureOutput({
      // Commander's messages quote the user's arguments: one line, escaped.
      writeErr: (text) => io.err(printable(text.trimEnd())),
      writeOut: (text) => io.out(text.trimEnd()),
    });
  registerCommands(program, io, async (body) => {
    exitCode = await runBody(io, body, debug);
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error: unknown) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  return exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`zipit: internal error: ${String(error)}\n`);
    process.exitCode = 70;
  },
);
