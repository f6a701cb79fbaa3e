#!/usr/bin/env node
/** @file The `zipit` command line: the only file that sets the exit code. */
import { Command, CommanderError } from 'commander';
import { processIo, type CliIo, type CommandBody } from './common.js';
import { registerCommands } from './commands.js';
import { printable } from './printable.js';

/** Runs a command body, printing a Failure as one line; returns the exit code. */
async function runBody(io: CliIo, body: CommandBody, debug: boolean): Promise<number> {
  try {
    const result = await body();
    if (result.ok) return 0;
    io.err(`zipit: error: ${printable(result.message)}`);
    return 1;
  } catch (error: unknown) {
    // Our bug, not the user's: one line unless --debug asks for the stack.
    const text = error instanceof Error ? error.message : String(error);
    io.err(
      `zipit: internal error: ${printable(text.split('\n')[0] ?? '')} (rerun with --debug for details)`,
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
