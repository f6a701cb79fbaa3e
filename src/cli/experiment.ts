/** @file `zipit experiment`: the paper's experiment on Fashion-MNIST (train pairs, choose alpha/beta, compare, aggregate). */
import { join, resolve } from 'node:path';
import { fail, ok } from '../errors.js';
import {
  ARCHITECTURES,
  DEFAULT_ALPHA_GRID,
  DEFAULT_BETA_GRID,
  markdownTable,
  runExperiment,
  writeFileAtomic,
  type Architecture,
  type HeadRule,
  type LogitRule,
} from '../index.js';
import type { RegisterCommand } from './command.js';
import {
  withProcedureOptions,
  intOption,
  parseNumberList,
  progressBar,
  samplesOption,
  seedOption,
  withRunOptions,
  type RunFlags,
} from './common.js';
import { checkNotInputs, commandInputs, loadSplits } from './inputs.js';
import { printable } from './printable.js';
import { checkReportPath, sourceMarkers, taskName, writeReport } from './reports.js';
import { formatTable } from './table.js';

interface ExperimentFlags extends RunFlags {
  arch: string;
  width: number;
  pairs: number;
  epochs: number;
  data: string;
  out: string;
  samples: number;
  seed: number;
  alphas?: number[];
  betas?: number[];
  report?: string;
  head: HeadRule;
  resetSources: boolean;
  logits: LogitRule;
}

/** Registers `zipit experiment`. */
export const registerExperiment: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withProcedureOptions(
      program
        .command('experiment')
        .description(
          "the paper's experiment: train pairs on random 5+5 splits, pick alpha/beta on pair 0, compare every method on the rest",
        )
        .option('--arch <name>', ARCHITECTURES.join(' | '), 'resnet20')
        .addOption(intOption('--width <w>', 'width multiplier', 1, 1))
        .addOption(intOption('--pairs <p>', 'pairs to train (pair 0 is held out)', 4, 2))
        .addOption(intOption('--epochs <e>', 'training epochs per model', 6, 1))
        .option('--data <name>', 'dataset (its :train and :test splits)', 'fashion-mnist')
        .option(
          '--out <dir>',
          'folder for models, results.json and results.md (reused to resume)',
          'runs/experiment',
        )
        .addOption(samplesOption('merge images'))
        .addOption(seedOption('base seed'))
        .option(
          '--alphas <list>',
          `alpha grid for the held-out pair (default: ${DEFAULT_ALPHA_GRID.join(',')})`,
          parseNumberList('--alphas'),
        )
        .option(
          '--betas <list>',
          `beta grid for the held-out pair (default: ${DEFAULT_BETA_GRID.join(',')})`,
          parseNumberList('--betas'),
        )
        .option('--report <file>', 'write a self-contained HTML report'),
    ),
  ).action((flags: ExperimentFlags) =>
    run(async () => {
      if (!(ARCHITECTURES as readonly string[]).includes(flags.arch)) {
        return fail(
          'bad-argument',
          `Expected --arch to be one of ${ARCHITECTURES.join(', ')}, got ${flags.arch}`,
        );
      }
      // The data files it reads; the results and the report may replace none of them, nor
      // the report the results. The report's folders are made when it is written.
      const trainSpec = `${flags.data}:train`;
      const testSpec = `${flags.data}:test`;
      const inputFiles = commandInputs([], [trainSpec, testSpec]);
      const results = [join(flags.out, 'results.json'), join(flags.out, 'results.md')];
      const safe = checkNotInputs(results, inputFiles);
      if (!safe.ok) return safe;
      if (flags.report !== undefined) {
        const writable = checkReportPath(flags.report, [...inputFiles, ...results]);
        if (!writable.ok) return writable;
      }
      const splits = loadSplits(trainSpec, testSpec);
      if (!splits.ok) return splits;
      const bar = progressBar(io);
      const result = await runExperiment({
        arch: flags.arch as Architecture,
        width: flags.width,
        pairs: flags.pairs,
        epochs: flags.epochs,
        ...splits.value,
        out: flags.out,
        samples: flags.samples,
        seed: flags.seed,
        ...(flags.alphas ? { alphas: flags.alphas } : {}),
        ...(flags.betas ? { betas: flags.betas } : {}),
        threads: flags.threads,
        head: flags.head,
        resetSources: flags.resetSources,
        logits: flags.logits,
        onProgress: bar.listener,
        onNote: (line) => {
          bar.stop();
          io.err(line);
        },
      });
      bar.stop();
      if (!result.ok) return result;
      const markdown = markdownTable(result.value);
      const written = writeFileAtomic(join(flags.out, 'results.md'), markdown, inputFiles);
      if (!written.ok) return written;
      io.out(formatTable(result.value.summary, [taskName(0), taskName(1)]));
      io.out(
        `\nresults: ${resolve(flags.out, 'results.json')}, ${resolve(flags.out, 'results.md')}`,
      );
      if (flags.report !== undefined) {
        const zipRows = result.value.summary.filter((r) => /^ZipIt!\d+\/\d+$/.test(r.method));
        const saved = writeReport(
          flags.report,
          {
            title: `zipit experiment: ${flags.arch} x${flags.width} on ${flags.data}`,
            subtitle: `zipit experiment --arch ${flags.arch} --width ${flags.width} --pairs ${flags.pairs} --epochs ${flags.epochs}; mean ± std over ${result.value.pairs.length} pairs`,
            tasks: [
              { name: taskName(0), classes: result.value.pairs[0]?.tasks[0] ?? [] },
              { name: taskName(1), classes: result.value.pairs[0]?.tasks[1] ?? [] },
            ],
            rows: result.value.summary,
            curve: zipRows.map((r) => {
              const [zipped, total] = r.method.replace('ZipIt!', '').split('/').map(Number) as [
                number,
                number,
              ];
              return {
                label: `${zipped}/${total}`,
                zipped,
                total,
                joint: r.joint,
                avg: r.avg,
                flops: r.flops,
              };
            }),
            markers: sourceMarkers(result.value.summary),
          },
          [...inputFiles, ...results],
        );
        if (!saved.ok) return saved;
        io.out(`report: ${printable(resolve(flags.report))}`);
      }
      return ok(undefined);
    }),
  );
};
