/**
 * @file The contract between `main.ts`, the command table and each command file: where a
 * command writes, what its body returns, and the signature of its registration. It imports no
 * command, so every command can depend on it without a loop.
 */
import type { Command } from 'commander';
import type { Result } from '../errors.js';

/** Where a command writes: results to `out` (stdout), progress and notes to `err` (stderr). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** True when stderr is a terminal (draw bars) rather than a log (print phase lines). */
  readonly interactive: boolean;
}

/** A command's body: resolves to ok, or a Failure the CLI prints as one line (exit 1). */
export type CommandBody = () => Promise<Result<void>>;

/** Runs a command body and records its exit code (provided by main.ts). */
export type Runner = (body: CommandBody) => Promise<void>;

/** Signature every command file exports. */
export type RegisterCommand = (program: Command, io: CliIo, run: Runner) => void;
