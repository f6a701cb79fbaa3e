/** @file `zipit demo` (what `npm start` runs): merge the committed pair with every method, print the table, write the report. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { fail, ok, type Result } from '../errors.js';
import { readRegularFile } from '../files/regular-file.js';
import {
  compareMethods,
  DEFAULT_METHODS,
  RECOMMENDED_MERGE,
  loadFashionMnist,
  readModelFile,
  writeFileAtomic,
  type Model,
} from '../index.js';
import { renderReport } from '../report/html.js';
import type { RegisterCommand } from './command.js';
import { progressBar, samplesOption, withRunOptions, type RunFlags } from './common.js';
import { mergeData, stopPointList } from './inputs.js';
import { comparisonReport, taskName } from './reports.js';
import { formatTable } from './table.js';

/** The committed demo pair's description (models/resnet20-pair/pair.json). */
interface DemoPair {
  readonly what: string;
  readonly tasks: number[][];
  readonly preprocessing: { mean: number[]; std: number[] };
  readonly models: string[];
}

interface DemoFlags extends RunFlags {
  out: string;
  samples: number;
  stopPoints?: string;
}

/** models/resnet20-pair (trained by `zipit train`), found from this file in src/cli or dist/cli. */
function demoDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'resnet20-pair');
}

function readPair(dir: string): Result<DemoPair> {
  const path = join(dir, 'pair.json');
  const bytes = readRegularFile(path, 'demo pair description', 2 ** 20);
  if (!bytes.ok) return bytes;
  try {
    return ok(JSON.parse(new TextDecoder().decode(bytes.value)) as DemoPair);
  } catch (error: unknown) {
    return fail('bad-argument', `Cannot read the demo pair ${path}: ${String(error)}`);
  }
}

/** At most `count` items of `items`, evenly spread, the first and the last included. */
export function spread<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from(
    { length: count },
    (_, i) => items[Math.round((i * (items.length - 1)) / (count - 1))]!,
  );
}

/** Registers `zipit demo`. */
export const registerDemo: RegisterCommand = (program, io, run) => {
  withRunOptions(
    program
      .command('demo')
      .description('merge the committed demo pair with every method and print the comparison table')
      .option('--out <dir>', 'folder for the HTML report', 'out')
      .addOption(samplesOption('merge images', 2000))
      .option(
        '--stop-points <list>',
        "partial zipping at these stop points: 'all' or comma-separated ids (default: four spread from the first to the last)",
      ),
  ).action((flags: DemoFlags) =>
    run(async () => {
      const start = performance.now();
      const dir = demoDir();
      const pair = readPair(dir);
      if (!pair.ok) return pair;
      const models: Model[] = [];
      for (const file of pair.value.models) {
        const model = readModelFile(join(dir, file));
        if (!model.ok) return model;
        models.push(model.value);
      }
      const train = loadFashionMnist('train');
      if (!train.ok) return train;
      const test = loadFashionMnist('test');
      if (!test.ok) return test;
      const data = mergeData(train.value, pair.value.tasks.flat(), flags.samples, 0);
      if (!data.ok) return data;
      io.err(
        `${pair.value.what}\nMerging with ${flags.samples} unlabelled training images; evaluating on the 10,000 test images.`,
      );
      // Partial zipping too, the paper's main lever. Every stop point of the ResNet-20 pair
      // took the demo to 3 min 8 s on 2 cores; four spread over the depth keep it under 3.
      const stopPoints = stopPointList(models[0]!, flags.stopPoints, (all) => spread(all, 4));
      if (!stopPoints.ok) return stopPoints;
      const bar = progressBar(io);
      const result = await compareMethods({
        models,
        labels: pair.value.models,
        tasks: pair.value.tasks,
        mergeData: data.value,
        testData: test.value,
        normalization: pair.value.preprocessing,
        // What `zipit merge` does by default, for every method.
        methods: DEFAULT_METHODS.map((m) =>
          m.method === 'zipit' ? { ...m, ...RECOMMENDED_MERGE.match } : m,
        ),
        resetSources: RECOMMENDED_MERGE.resetSources,
        head: RECOMMENDED_MERGE.head,
        logits: RECOMMENDED_MERGE.logits,
        threads: flags.threads,
        stopPoints: stopPoints.value,
        onProgress: bar.listener,
      });
      bar.stop();
      if (!result.ok) return result;
      const taskNames = pair.value.tasks.map((t, i) => `${taskName(i)} (${t.join(',')})`);
      io.out(formatTable(result.value.rows, taskNames));
      const report = comparisonReport(
        'zipit demo: merging two Fashion-MNIST models without training',
        `${pair.value.what} Merge data: ${flags.samples} training images. Command: npm start.`,
        pair.value.tasks,
        result.value,
      );
      mkdirSync(flags.out, { recursive: true });
      const path = resolve(flags.out, 'zipit-demo-report.html');
      const written = writeFileAtomic(path, renderReport(report));
      if (!written.ok) return written;
      io.out(`\nreport: ${path}  (${((performance.now() - start) / 1000).toFixed(0)} s)`);
      return ok(undefined);
    }),
  );
};
