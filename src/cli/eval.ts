/** @file `zipit eval`: joint and per-task accuracy of one model, a multi-output model, or an ensemble. */
import { ok } from '../errors.js';
import { evaluateModels, loadData } from '../index.js';
import type { RegisterCommand } from './command.js';
import {
  dataOption,
  progressBar,
  tasksOption,
  TEST_DATA,
  withPreprocessingOptions,
  withRunOptions,
  type BatchRunFlags,
} from './common.js';
import { formatPercent, loadModels, resolveTasks, type PreprocessingFlags } from './inputs.js';

interface EvalFlags extends PreprocessingFlags, BatchRunFlags {
  data: string;
  tasks?: string;
  json?: boolean;
}

/** Registers `zipit eval`. */
export const registerEval: RegisterCommand = (program, io, run) => {
  withRunOptions(
    withPreprocessingOptions(
      program
        .command('eval')
        .description('joint and per-task accuracy of a model, or of several models as an ensemble')
        .argument('<models...>', 'ONNX model files (several = the ensemble)')
        .addOption(
          dataOption(
            'fashion-mnist:test | fashion-mnist:train | idx:<images>,<labels> | cifar10:<dir>:train|test',
            TEST_DATA,
          ),
        )
        .addOption(
          tasksOption(
            "class sets separated by '/', one per model or head, e.g. 0,2,4,6,8/1,3,5,7,9 (default: the classes the models were trained on, if stored; else one task of all classes)",
          ),
        )
        .option('--json', 'print one JSON object on stdout'),
    ),
    256,
  ).action((paths: string[], flags: EvalFlags) =>
    run(async () => {
      const models = loadModels(paths, flags);
      if (!models.ok) return models;
      const dataset = loadData(flags.data);
      if (!dataset.ok) return dataset;
      const tasks = resolveTasks(
        flags.tasks,
        dataset.value,
        models.value.map((m) => m.model),
      );
      if (!tasks.ok) return tasks;
      const bar = progressBar(io);
      const result = await evaluateModels(
        models.value.map((m) => ({ model: m.model, label: m.path, mean: m.mean, std: m.std })),
        dataset.value,
        tasks.value,
        { batchSize: flags.batch, threads: flags.threads, onProgress: bar.listener },
      );
      bar.stop();
      if (!result.ok) return result;
      const r = result.value;
      if (flags.json)
        io.out(JSON.stringify({ joint: r.joint, tasks: r.tasks, avg: r.avg, n: r.n }));
      else {
        const perTask = r.tasks.map((t, i) => `task${i} ${formatPercent(t)}`).join('  ');
        io.out(
          `joint ${formatPercent(r.joint)}  ${perTask}  avg ${formatPercent(r.avg)}  (n=${r.n})`,
        );
      }
      return ok(undefined);
    }),
  );
};
