/** @file `zipit compare`: every baseline on one set of source models, as the paper's table (and an HTML report). */
import { resolve } from 'node:path';
import { fail, ok } from '../errors.js';
import {
  RECOMMENDED_MERGE,
  compareMethods,
  DEFAULT_METHODS,
  loadData,
  type HeadRule,
  type LogitRule,
  type MethodSpec,
} from '../index.js';
import type { HeadOrderRule } from '../index.js';
import type { RegisterCommand } from './command.js';
import {
  headsOption,
  dataOption,
  withProcedureOptions,
  progressBar,
  samplesOption,
  seedOption,
  tasksOption,
  TEST_DATA,
  withPreprocessingOptions,
  withRunOptions,
  withZipitOptions,
  type RunFlags,
  type ZipitFlags,
} from './common.js';
import { printable } from './printable.js';
import { commandInputs, loadMergeInputs, stopPointList, type MergeInputFlags } from './inputs.js';
import { checkReportPath, comparisonReport, taskNames, writeReport } from './reports.js';
import { formatTable } from './table.js';

interface CompareFlags extends MergeInputFlags, ZipitFlags, RunFlags {
  testData: string;
  stopPoints?: string;
  report?: string;
  json?: boolean;
  repair: boolean;
  head: HeadRule;
  resetSources: boolean;
  logits: LogitRule;
  heads: HeadOrderRule;
}

/** Registers `zipit compare`. */
export const registerCompare: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withProcedureOptions(
      withZipitOptions(
        withPreprocessingOptions(
          program
            .command('compare')
            .description(
              'evaluate each model, W.Avg, Permute, weight matching, ZipIt! (optionally at every stop point) and the ensemble',
            )
            .argument('<models...>', 'two or more ONNX models of one architecture')
            .addOption(tasksOption("each model's classes, e.g. 0,2,4,6,8/1,3,5,7,9"))
            .addOption(dataOption('merge data'))
            .addOption(dataOption('evaluation data', TEST_DATA, '--test-data <spec>'))
            .addOption(samplesOption('merge images'))
            .addOption(seedOption('seed of the merge-data draw'))
            .option(
              '--stop-points <list>',
              "partial zipping at these stop points: 'all' or comma-separated ids",
            )
            .option('--report <file>', 'write a self-contained HTML report')
            .option('--json', 'print the rows as one JSON object')
            .option('--no-repair', 'skip the statistics correction')
            .addOption(headsOption()),
        ),
      ),
    ),
  ).action((paths: string[], flags: CompareFlags) =>
    run(async () => {
      if (paths.length < 2)
        return fail('bad-argument', `Expected at least 2 models to compare, got ${paths.length}.`);
      // Every file this run reads; the report may replace none of them. Its folders are made
      // when it is written, so a failed run leaves none.
      const inputFiles = commandInputs(paths, [flags.data, flags.testData]);
      if (flags.report !== undefined) {
        const writable = checkReportPath(flags.report, inputFiles);
        if (!writable.ok) return writable;
      }
      const test = loadData(flags.testData);
      if (!test.ok) return test;
      const inputs = loadMergeInputs(paths, flags, test.value);
      if (!inputs.ok) return inputs;
      const { models, labels, normalization, data, tasks } = inputs.value;
      const stopPoints = stopPointList(models[0]!, flags.stopPoints);
      if (!stopPoints.ok) return stopPoints;
      // The library's method list, with ZipIt! at the user's alpha and beta.
      const methods: MethodSpec[] = DEFAULT_METHODS.map((m) =>
        m.method === 'zipit' ? { ...m, alpha: flags.alpha, beta: flags.beta } : m,
      );
      const bar = progressBar(io);
      const result = await compareMethods({
        models,
        labels,
        tasks,
        mergeData: data,
        testData: test.value,
        normalization,
        methods,
        repair: flags.repair,
        head: flags.head,
        resetSources: flags.resetSources,
        logits: flags.logits,
        heads: flags.heads,
        threads: flags.threads,
        stopPoints: stopPoints.value,
        onProgress: bar.listener,
      });
      bar.stop();
      if (!result.ok) return result;
      if (flags.json)
        io.out(
          JSON.stringify({
            models: paths,
            tasks: tasks,
            samples: data.count,
            head: flags.head,
            resetSources: flags.resetSources,
            logits: flags.logits,
            heads: flags.heads,
            rows: result.value.rows,
          }),
        );
      else io.out(formatTable(result.value.rows, taskNames(tasks.length)));
      if (flags.report !== undefined) {
        const report = comparisonReport(
          `zipit compare: ${paths.join(' + ')}`,
          `zipit compare ${paths.join(' ')} --samples ${flags.samples}${flags.stopPoints ? ` --stop-points ${flags.stopPoints}` : ''}${flags.alpha !== RECOMMENDED_MERGE.match.alpha || flags.beta !== RECOMMENDED_MERGE.match.beta ? ` --alpha ${flags.alpha} --beta ${flags.beta}` : ''}${flags.head !== RECOMMENDED_MERGE.head ? ` --head ${flags.head}` : ''}${flags.resetSources !== RECOMMENDED_MERGE.resetSources ? (flags.resetSources ? ' --reset-sources' : ' --no-reset-sources') : ''}${flags.logits !== RECOMMENDED_MERGE.logits ? ` --logits ${flags.logits}` : ''}`,
          tasks,
          result.value,
        );
        const written = writeReport(flags.report, report, inputFiles);
        if (!written.ok) return written;
        io.err(`report: ${printable(resolve(flags.report))}`);
      }
      return ok(undefined);
    }),
  );
};
