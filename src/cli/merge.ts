/** @file `zipit merge`: zip K models into one ONNX model. */
import { resolve } from 'node:path';
import { fail, ok, type Result } from '../errors.js';
import {
  checkOutputPath,
  compareMethods,
  DEFAULT_ALPHA_GRID,
  DEFAULT_BETA_GRID,
  loadData,
  mergeModels,
  parseMatchOptions,
  tuneMerge,
  unitIntervalProblem,
  withTuningMetadata,
  type CompareOutput,
  type Dataset,
  type HeadRule,
  type LogitRule,
  type MatchMethod,
  type MergeResult,
  type MethodSpec,
  type StatisticsSet,
  type Tuning,
  writeModelFile,
} from '../index.js';
import type { HeadOrderRule } from '../index.js';
import type { RegisterCommand } from './command.js';
import {
  headsOption,
  dataOption,
  withProcedureOptions,
  maxMemoryOption,
  progressBar,
  samplesOption,
  seedOption,
  tasksOption,
  TEST_DATA,
  withPreprocessingOptions,
  withRunOptions,
  type BatchRunFlags,
} from './common.js';
import { printable } from './printable.js';
import { commandInputs, loadMergeInputs, loadStatistics, type MergeInputFlags } from './inputs.js';
import { checkReportPath, comparisonReport, taskNames, writeReport } from './reports.js';
import { formatTable } from './table.js';
import {
  formatTuning,
  parseTunable,
  withTunableZipitOptions,
  type TunableZipitFlags,
} from './tuning.js';

interface MergeFlags extends MergeInputFlags, TunableZipitFlags, BatchRunFlags {
  method: string;
  out: string;
  json?: boolean;
  repair: boolean;
  stopAt?: string;
  maxMemory: number;
  stats?: string[];
  report?: string;
  testData: string;
  head: HeadRule;
  resetSources: boolean;
  logits: LogitRule;
  heads: HeadOrderRule;
  weightSimilarity: string;
}

/** Table names of the methods, as `zipit compare` and the paper write them. */
const METHOD_NAMES: Record<MatchMethod, string> = {
  zipit: 'ZipIt!',
  permute: 'Permute',
  wavg: 'W.Avg',
  weights: 'Weights',
  cca: 'CCA',
};

/** Registers `zipit merge`. */
export const registerMerge: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withProcedureOptions(
      withTunableZipitOptions(
        withPreprocessingOptions(
          program
            .command('merge')
            .description(
              'merge K models of one architecture into one (ZipIt!, Permute, weight averaging, weight matching or CCA merge)',
            )
            .argument('<models...>', 'two or more ONNX model files of the same architecture')
            .requiredOption('--out <file>', 'where to write the merged ONNX model')
            .option(
              '--method <name>',
              'zipit | permute | wavg | weights (Git Re-Basin weight matching: no data for the matching) | cca (CCA merge: dense linear maps instead of matchings; full merges of models without per-channel scales such as BatchNorm)',
              'zipit',
            )
            .addOption(headsOption())
            .option(
              '--weight-similarity <share>',
              "dual-space matching (zipit, permute): match on this share, in [0, 1], of the features' weight similarity mixed into their activation correlation",
              '0',
            )
            .addOption(dataOption('merge data (labels unused)'))
            .addOption(samplesOption('merge images, drawn evenly from the classes'))
            .addOption(
              tasksOption(
                "the tasks' classes (merge data is drawn from them), e.g. 0,2,4,6,8/1,3,5,7,9",
              ),
            )
            .addOption(seedOption('seed of the merge-data draw'))
            .option(
              '--stop-at <point>',
              "partial zipping: zip up to this stop point (a node name or space id from 'zipit inspect', or a fraction of the layers) and keep one head per model",
            )
            .addOption(maxMemoryOption())
            .option(
              '--stats <files...>',
              "use these statistics files (shards from 'zipit stats', summed) instead of the statistics pass",
            )
            .option('--no-repair', 'skip the statistics correction (BatchNorm reset or REPAIR)')
            .option(
              '--report <file>',
              'also evaluate the merged model, the sources and their ensemble on --test-data and write a self-contained HTML report',
            )
            .addOption(dataOption('evaluation data of --report', TEST_DATA, '--test-data <spec>'))
            .option('--json', 'print one JSON object on stdout'),
        ),
      ),
    ),
    128,
  ).action((paths: string[], flags: MergeFlags) =>
    run(async () => {
      const start = performance.now();
      const alpha = parseTunable('alpha', flags.alpha, DEFAULT_ALPHA_GRID);
      if (!alpha.ok) return alpha;
      const beta = parseTunable('beta', flags.beta, DEFAULT_BETA_GRID);
      if (!beta.ok) return beta;
      // A list (or 'auto') asks for a label-free choice; the other parameter may stay fixed.
      const tune = typeof alpha.value !== 'number' || typeof beta.value !== 'number';
      const match = parseMatchOptions({
        method: flags.method,
        alpha: typeof alpha.value === 'number' ? alpha.value : undefined,
        beta: typeof beta.value === 'number' ? beta.value : undefined,
      });
      if (!match.ok) return match;
      if (tune && match.value.method !== 'zipit') {
        const [name, given] =
          typeof alpha.value !== 'number' ? ['alpha', flags.alpha] : ['beta', flags.beta];
        return fail(
          'bad-argument',
          `--${name} ${given} chooses ZipIt!'s ${name}, but --method ${match.value.method} reads neither alpha nor beta; use --method zipit, or drop --${name}.`,
        );
      }
      // A blank value is not 0: Number('') would be.
      const weightSimilarity =
        flags.weightSimilarity.trim() === '' ? Number.NaN : Number(flags.weightSimilarity);
      const shareProblem = unitIntervalProblem(
        'weight-similarity',
        weightSimilarity,
        flags.weightSimilarity,
      );
      if (shareProblem !== undefined) return fail('bad-argument', shareProblem);
      if (weightSimilarity > 0 && !['zipit', 'permute'].includes(match.value.method))
        return fail(
          'bad-argument',
          `--weight-similarity mixes weights into the correlation that zipit and permute match on; --method ${match.value.method} reads none: drop it, or use --method zipit.`,
        );
      if (tune && !(flags.tuneHoldout >= 0 && flags.tuneHoldout < 1))
        return fail(
          'bad-argument',
          `Expected --tune-holdout to be in [0, 1), got ${flags.tuneHoldout}.`,
        );
      if (paths.length < 2)
        return fail('bad-argument', `Expected at least 2 models to merge, got ${paths.length}.`);
      // Every file this run reads; no output may replace one, by path, symlink or hard link.
      const inputFiles = commandInputs(
        paths,
        flags.report !== undefined ? [flags.data, flags.testData] : [flags.data],
        flags.stats ?? [],
      );
      const writable = checkOutputPath(flags.out, inputFiles);
      if (!writable.ok) return writable;
      let test: Dataset | undefined;
      if (flags.report !== undefined) {
        if (flags.stats !== undefined)
          return fail(
            'bad-argument',
            '--report evaluates merges it computes itself; drop --stats, or run zipit eval on the merged model.',
          );
        if ([...paths, flags.out].some((p) => resolve(p) === resolve(flags.report!)))
          return fail(
            'unwritable-output',
            `--report ${flags.report} is one of the models or --out; choose another file.`,
          );
        // Its folders are made when it is written, after the merge: a failed run leaves none.
        const reportWritable = checkReportPath(flags.report, [...inputFiles, flags.out]);
        if (!reportWritable.ok) return reportWritable;
        const loadedTest = loadData(flags.testData);
        if (!loadedTest.ok) return loadedTest;
        test = loadedTest.value;
      }
      const inputs = loadMergeInputs(paths, flags, test);
      if (!inputs.ok) return inputs;
      const { models, labels, normalization, data, tasks } = inputs.value;
      let statistics: StatisticsSet | undefined;
      if (flags.stats !== undefined) {
        const summed = loadStatistics(flags.stats);
        if (!summed.ok) return summed;
        statistics = summed.value;
      }
      const loaded = performance.now();
      const bar = progressBar(io);
      // What every merge below shares, tuned or not.
      const shared = {
        weightSimilarity,
        repair: flags.repair,
        head: flags.head,
        resetSources: flags.resetSources,
        logits: flags.logits,
        ...(flags.stopAt !== undefined ? { stopAt: flags.stopAt } : {}),
        memoryLimit: flags.maxMemory * 2 ** 30,
        ...(statistics ? { statistics } : {}),
        batchSize: flags.batch,
        threads: flags.threads,
        onProgress: bar.listener,
      };
      let compared: CompareOutput | undefined;
      let result: Result<MergeResult> | undefined;
      let tuning: Tuning | undefined;
      if (tune) {
        const asGrid = (value: number | readonly number[]): readonly number[] =>
          typeof value === 'number' ? [value] : value;
        const tuned = await tuneMerge(models, labels, data, normalization, tasks, {
          alphas: asGrid(alpha.value),
          betas: asGrid(beta.value),
          holdout: flags.tuneHoldout,
          merge: shared,
        });
        if (!tuned.ok) {
          bar.stop();
          return tuned;
        }
        tuning = tuned.value.tuning;
        result = ok(tuned.value.merge);
      }
      const chosen = {
        alpha: tuning?.chosen.alpha ?? match.value.options.alpha,
        beta: tuning?.chosen.beta ?? match.value.options.beta,
      };
      if (test !== undefined) {
        // The report's table comes from the same merge that is written: compareMethods runs
        // it once, with the sources and the ensemble scored beside it.
        const spec: MethodSpec = {
          name: METHOD_NAMES[match.value.method],
          method: match.value.method,
          alpha: chosen.alpha,
          beta: chosen.beta,
          weightSimilarity,
          ...(flags.stopAt !== undefined ? { stopAt: flags.stopAt } : {}),
        };
        const comparison = await compareMethods({
          models,
          labels,
          tasks,
          mergeData: data,
          testData: test,
          normalization,
          methods: [spec],
          repair: flags.repair,
          head: flags.head,
          resetSources: flags.resetSources,
          logits: flags.logits,
          heads: flags.heads,
          threads: flags.threads,
          batchSize: flags.batch,
          memoryLimit: flags.maxMemory * 2 ** 30,
          onProgress: bar.listener,
        });
        if (comparison.ok) compared = comparison.value;
        result = comparison.ok ? ok([...comparison.value.merges.values()][0]!) : comparison;
        if (result.ok && tuning !== undefined)
          result = ok({ ...result.value, model: withTuningMetadata(result.value.model, tuning) });
      } else if (result === undefined) {
        result = await mergeModels(models, labels, data, normalization, {
          method: match.value.method,
          match: match.value.options,
          ...shared,
          // The tasks are the trained classes when there is one set per model.
          ...(tasks.length === models.length ? { trainedClasses: tasks } : {}),
        });
      }
      bar.stop();
      if (!result.ok) return result;
      const beforeWrite = performance.now();
      const written = writeModelFile(flags.out, result.value.model, inputFiles);
      if (!written.ok) return written;
      const end = performance.now();
      const report = result.value.report;
      const seconds = {
        load: (loaded - start) / 1000,
        ...report.seconds,
        // With --report the merge ran inside the comparison, which also scored the sources,
        // the ensemble and the merge on the test data.
        ...(compared !== undefined ? { mergeAndEvaluate: (beforeWrite - loaded) / 1000 } : {}),
        write: (end - beforeWrite) / 1000,
        total: (end - start) / 1000,
      };
      if (flags.json) {
        io.out(
          JSON.stringify({
            ...report,
            out: flags.out,
            samples: data.count,
            seconds,
            ...(tuning !== undefined ? { tuning } : {}),
            ...(compared !== undefined ? { rows: compared.rows } : {}),
          }),
        );
      } else {
        if (tuning !== undefined) io.out(formatTuning(tuning));
        const merges = report.spaces.reduce(
          (a, s) => [a[0]! + s.crossModelMerges, a[1]! + s.sameModelMerges],
          [0, 0],
        );
        io.out(
          `merged ${paths.length} models with ${report.method} (alpha ${report.parameters.alpha}, beta ${report.parameters.beta}): ` +
            `${report.spacesMerged} spaces, ${merges[0]} cross-model and ${merges[1]} same-model merges, correction ${report.correction}` +
            (report.stopAt
              ? `, zipped ${report.stopAt.zipped}/${report.stopAt.total} layers (stop at ${report.stopAt.id}); `
              : '; ') +
            `wrote ${printable(flags.out)} in ${seconds.total.toFixed(1)} s` +
            (compared !== undefined ? ' (including the evaluation for the report)' : ''),
        );
      }
      if (compared !== undefined && flags.report !== undefined) {
        if (!flags.json) io.out(formatTable(compared.rows, taskNames(tasks.length)));
        const report = comparisonReport(
          `zipit merge: ${paths.join(' + ')}`,
          `zipit merge ${paths.join(' ')} --method ${flags.method}${match.value.method === 'zipit' ? ` --alpha ${flags.alpha} --beta ${flags.beta}` : ''}${flags.stopAt !== undefined ? ` --stop-at ${flags.stopAt}` : ''} --samples ${flags.samples}; evaluated on ${flags.testData}`,
          tasks,
          compared,
        );
        const saved = writeReport(flags.report, report, [...inputFiles, flags.out]);
        if (!saved.ok) return saved;
        io.err(`report: ${printable(resolve(flags.report))}`);
      }
      return ok(undefined);
    }),
  );
};
