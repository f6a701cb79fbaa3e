/** @file The table of `zipit` subcommands: each file registers one command. */
import type { Command } from 'commander';
import type { CliIo, CommandBody } from './common.js';
import { registerCompare } from './compare.js';
import { registerDemo } from './demo.js';
import { registerEval } from './eval.js';
import { registerExperiment } from './experiment.js';
import { registerInspect } from './inspect.js';
import { registerMerge } from './merge.js';
import { registerStats } from './stats.js';
import { registerTrain } from './train.js';

/** Runs a command body and records its exit code (provided by main.ts). */
export type Runner = (body: CommandBody) => Promise<void>;

/** Signature every command file exports. */
export type RegisterCommand = (program: Command, io: CliIo, run: Runner) => void;

const COMMANDS: readonly RegisterCommand[] = [
  registerDemo,
  registerCompare,
  registerEval,
  registerExperiment,
  registerMerge,
  registerStats,
  registerInspect,
  registerTrain,
];

/** Adds every subcommand to `program`. */
export function registerCommands(program: Command, io: CliIo, run: Runner): void {
  for (const register of COMMANDS) register(program, io, run);
}
