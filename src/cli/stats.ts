/** @file `zipit stats`: the statistics of a merge on one shard of the data, saved to a file that `zipit merge --stats` sums. */
import { ok } from '../errors.js';
import { collectMergeStatistics } from '../merge/pipeline.js';
import { checkOutputPath, writeFileAtomic } from '../onnx/files.js';
import { encodeStatistics } from '../stats/file.js';
import type { RegisterCommand } from './commands.js';
import { progressBar, withPreprocessingOptions, withRunOptions, intOption } from './common.js';
import { commandInputs, loadMergeInputs } from './inputs.js';

interface StatsFlags {
  out: string;
  data: string;
  samples: number;
  tasks?: string;
  seed: number;
  stopAt?: string;
  mean?: number[];
  std?: number[];
  batch: number;
  threads: number;
}

/** Registers `zipit stats`. */
export const registerStats: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withPreprocessingOptions(
      program
        .command('stats')
        .description(
          'compute the statistics of a merge on this data shard and save them (sum shards with zipit merge --stats)',
        )
        .argument('<models...>', 'the models to be merged, in merge order')
        .requiredOption('--out <file>', 'statistics file to write')
        .option('--data <spec>', 'this shard of the merge data', 'fashion-mnist:train')
        .addOption(intOption('--samples <n>', 'images drawn evenly from the classes', 5000, 1))
        .option('--tasks <sets>', "the tasks' classes, e.g. 0,2,4,6,8/1,3,5,7,9")
        .addOption(intOption('--seed <n>', 'seed of the draw (use a different one per shard)', 0))
        .option('--stop-at <point>', 'the stop point the merge will use (statistics depend on it)'),
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
      const { models, data } = inputs.value;
      const bar = progressBar(io);
      const first = models[0]!;
      const statistics = await collectMergeStatistics(
        models.map((m) => m.model),
        paths,
        data,
        { mean: first.mean, std: first.std },
        {
          method: 'zipit',
          match: { alpha: 0.3, beta: 0.125 },
          batchSize: flags.batch,
          threads: flags.threads,
          onProgress: bar.listener,
          ...(flags.stopAt !== undefined ? { stopAt: flags.stopAt } : {}),
        },
      );
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
