/** @file `zipit stats`: the statistics of a merge on one shard of the data, saved to a file that `zipit merge --stats` sums. */
import { ok } from '../errors.js';
import {
  checkOutputPath,
  collectMergeStatistics,
  encodeStatistics,
  writeFileAtomic,
} from '../index.js';
import type { RegisterCommand } from './command.js';
import {
  dataOption,
  withResetSourcesOptions,
  progressBar,
  samplesOption,
  seedOption,
  tasksOption,
  withPreprocessingOptions,
  withRunOptions,
  type BatchRunFlags,
} from './common.js';
import { commandInputs, loadMergeInputs, type MergeInputFlags } from './inputs.js';

interface StatsFlags extends MergeInputFlags, BatchRunFlags {
  out: string;
  stopAt?: string;
  resetSources: boolean;
}

/** Registers `zipit stats`. */
export const registerStats: RegisterCommand = (program, io, run) => {
  withRunOptions(
    // Each shard resets on its own images: the merge's --reset-sources must match.
    withResetSourcesOptions(
      withPreprocessingOptions(
        program
          .command('stats')
          .description(
            'compute the statistics of a merge on this data shard and save them (sum shards with zipit merge --stats)',
          )
          .argument('<models...>', 'the models to be merged, in merge order')
          .requiredOption('--out <file>', 'statistics file to write')
          .addOption(dataOption('this shard of the merge data'))
          .addOption(samplesOption('images drawn evenly from the classes'))
          .addOption(tasksOption("the tasks' classes, e.g. 0,2,4,6,8/1,3,5,7,9"))
          .addOption(seedOption('seed of the draw (use a different one per shard)'))
          .option(
            '--stop-at <point>',
            'the stop point the merge will use (statistics depend on it)',
          ),
      ),
    ),
    128,
  ).action((paths: string[], flags: StatsFlags) =>
    run(async () => {
      // Every file this run reads; the statistics file may replace none of them.
      const inputFiles = commandInputs(paths, [flags.data]);
      const writable = checkOutputPath(flags.out, inputFiles);
      if (!writable.ok) return writable;
      const inputs = loadMergeInputs(paths, flags);
      if (!inputs.ok) return inputs;
      const { models, labels, normalization, data } = inputs.value;
      const bar = progressBar(io);
      const statistics = await collectMergeStatistics(models, labels, data, normalization, {
        method: 'zipit',
        resetSources: flags.resetSources,
        batchSize: flags.batch,
        threads: flags.threads,
        onProgress: bar.listener,
        ...(flags.stopAt !== undefined ? { stopAt: flags.stopAt } : {}),
      });
      bar.stop();
      if (!statistics.ok) return statistics;
      const written = writeFileAtomic(flags.out, encodeStatistics(statistics.value), inputFiles);
      if (!written.ok) return written;
      io.out(
        `wrote statistics of ${statistics.value.size} spaces over ${data.count} images to ${flags.out}`,
      );
      return ok(undefined);
    }),
  );
};
