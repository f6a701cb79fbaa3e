/** @file `zipit compare`: every baseline on one set of source models, as the paper's table (and an HTML report). */
import { resolve } from 'node:path';
import { fail, ok } from '../errors.js';
import { compareMethods, type CompareOutput, type MethodSpec } from '../experiment/compare.js';
import { allStopPointIds } from '../merge/stop-points.js';
import { checkOutputPath, writeFileAtomic } from '../onnx/files.js';
import { renderReport } from '../report/html.js';
import type { ReportData } from '../report/types.js';
import type { RegisterCommand } from './commands.js';
import {
  progressBar,
  withPreprocessingOptions,
  withRunOptions,
  withZipitOptions,
  intOption,
} from './common.js';
import { printable } from './printable.js';
import { commandInputs, loadDataset, loadMergeInputs } from './inputs.js';
import { formatTable } from './table.js';

interface CompareFlags {
  tasks?: string;
  data: string;
  testData: string;
  samples: number;
  seed: number;
  alpha: number;
  beta: number;
  stopPoints?: string;
  report?: string;
  json?: boolean;
  repair: boolean;
  mean?: number[];
  std?: number[];
  threads: number;
}

/** The report of a comparison: table, partial-zipping curve, ZipIt!'s merges per space, one correlation heat map. */
export function comparisonReport(
  title: string,
  subtitle: string,
  tasks: readonly (readonly number[])[],
  result: CompareOutput,
): ReportData {
  // The heat map and merge counts show ZipIt!'s full merge, else the first merge there is.
  const zip = result.merges.get('ZipIt!') ?? [...result.merges.values()][0];
  const heatSpace =
    zip?.spaces.find((s) => s.kind === 'residual') ??
    zip?.spaces.find((s) => s.kind !== 'fixed' && zip.correlations.has(s.id));
  const values = heatSpace ? zip?.correlations.get(heatSpace.id) : undefined;
  const numModels = zip?.report.numModels ?? 2;
  return {
    title,
    subtitle,
    tasks: tasks.map((classes, i) => ({ name: `Task ${String.fromCharCode(65 + i)}`, classes })),
    rows: result.rows,
    ...(result.curve.length > 0 ? { curve: result.curve } : {}),
    markers: result.rows
      .filter((r) => r.method.startsWith('Model') || r.method === 'Ensemble')
      .map((r) => ({ label: r.method, joint: r.joint, avg: r.avg, flops: r.flops })),
    ...(zip ? { spaces: zip.report.spaces } : {}),
    ...(heatSpace && values
      ? { heatmap: { spaceId: heatSpace.id, size: numModels * heatSpace.width, values, numModels } }
      : {}),
  };
}

/** Registers `zipit compare`. */
export const registerCompare: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withZipitOptions(
      withPreprocessingOptions(
        program
          .command('compare')
          .description(
            'evaluate each model, W.Avg, Permute, ZipIt! (optionally at every stop point) and the ensemble',
          )
          .argument('<models...>', 'two or more ONNX models of one architecture')
          .option('--tasks <sets>', "each model's classes, e.g. 0,2,4,6,8/1,3,5,7,9")
          .option('--data <spec>', 'merge data', 'fashion-mnist:train')
          .option('--test-data <spec>', 'evaluation data', 'fashion-mnist:test')
          .addOption(intOption('--samples <n>', 'merge images', 5000, 1))
          .addOption(intOption('--seed <n>', 'seed of the merge-data draw', 0))
          .option(
            '--stop-points <list>',
            "partial zipping at these stop points: 'all' or comma-separated ids",
          )
          .option('--report <file>', 'write a self-contained HTML report')
          .option('--json', 'print the rows as one JSON object')
          .option('--no-repair', 'skip the statistics correction'),
      ),
    ),
  ).action((paths: string[], flags: CompareFlags) =>
    run(async () => {
      if (paths.length < 2)
        return fail('bad-argument', `Expected at least 2 models to compare, got ${paths.length}.`);
      // Every file this run reads; the report may replace none of them. Its folders are made
      // when it is written, so a failed run leaves none.
      const inputFiles = commandInputs(paths, [flags.data, flags.testData]);
      const reportOptions = { flag: '--report', createFolders: true } as const;
      if (flags.report !== undefined) {
        const writable = checkOutputPath(flags.report, inputFiles, reportOptions);
        if (!writable.ok) return writable;
      }
      const test = loadDataset(flags.testData);
      if (!test.ok) return test;
      const inputs = loadMergeInputs(paths, flags, test.value);
      if (!inputs.ok) return inputs;
      const { models, data, tasks } = inputs.value;
      let stopPoints: string[] = [];
      if (flags.stopPoints === 'all') {
        const ids = allStopPointIds(models[0]!.model);
        if (!ids.ok) return ids;
        stopPoints = ids.value;
      } else if (flags.stopPoints !== undefined) stopPoints = flags.stopPoints.split(',');
      const methods: MethodSpec[] = [
        { name: 'W.Avg', method: 'wavg', alpha: 0, beta: 0 },
        { name: 'Permute', method: 'permute', alpha: 0, beta: 0 },
        { name: 'ZipIt!', method: 'zipit', alpha: flags.alpha, beta: flags.beta },
      ];
      const bar = progressBar(io);
      const first = models[0]!;
      const result = await compareMethods({
        models: models.map((m) => m.model),
        labels: models.map((m) => m.path),
        tasks: tasks,
        mergeData: data,
        testData: test.value,
        normalization: { mean: first.mean, std: first.std },
        methods,
        repair: flags.repair,
        threads: flags.threads,
        stopPoints,
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
            rows: result.value.rows,
          }),
        );
      else
        io.out(
          formatTable(
            result.value.rows,
            tasks.map((_, i) => `Task ${String.fromCharCode(65 + i)}`),
          ),
        );
      if (flags.report !== undefined) {
        const report = comparisonReport(
          `zipit compare: ${paths.join(' + ')}`,
          `zipit compare ${paths.join(' ')} --samples ${flags.samples}${flags.stopPoints ? ` --stop-points ${flags.stopPoints}` : ''}`,
          tasks,
          result.value,
        );
        const written = writeFileAtomic(
          flags.report,
          renderReport(report),
          inputFiles,
          reportOptions,
        );
        if (!written.ok) return written;
        io.err(`report: ${printable(resolve(flags.report))}`);
      }
      return ok(undefined);
    }),
  );
};
