/** @file The table of `zipit` subcommands: each file registers one command. */
import type { Command } from 'commander';
import type { CliIo, RegisterCommand, Runner } from './command.js';
import { registerCompare } from './compare.js';
import { registerDemo } from './demo.js';
import { registerEval } from './eval.js';
import { registerExperiment } from './experiment.js';
import { registerInspect } from './inspect.js';
import { registerMerge } from './merge.js';
import { registerStats } from './stats.js';
import { registerTrain } from './train.js';

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
