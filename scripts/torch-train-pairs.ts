/**
 * @file Trains ResNet-20 pairs in PyTorch (scripts/torch-train-pair.py: the reference's recipe)
 * on the same seeded random 5+5 splits and model seeds as `zipit experiment` (pair p: split
 * randomSplit(10, 1000 + p), seeds 2p+1 and 2p+2), so each PyTorch pair sits beside the
 * zipit-trained pair of the same split. Pair 0 is the hyper-parameter pair, as in the experiment.
 *
 * Each model is exported twice (BatchNorm kept: `a-bn.onnx`; folded: `a.onnx`), and each pair
 * folder gets a pair.json (tasks, seeds, preprocessing, task accuracies). Models already on disk
 * are kept, so an interrupted run resumes. Two models train at once, one thread each (PyTorch
 * on one thread uses a core better than two models' worth of threads fighting).
 *
 *   node --import tsx scripts/torch-train-pairs.ts [--pairs 4] [--epochs 6] [--out runs/torch-pairs] [--parallel 2]
 *
 * Needs Debian's python3-torch at /usr/bin/python3.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { randomSplit } from '../src/experiment/experiment.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '4' },
    epochs: { type: 'string', default: '6' },
    out: { type: 'string', default: 'runs/torch-pairs' },
    parallel: { type: 'string', default: '2' },
  },
});
const pairs = Number(values.pairs);
const epochs = Number(values.epochs);

interface Job {
  readonly pair: number;
  readonly name: 'a' | 'b';
  readonly classes: number[];
  readonly seed: number;
}

const jobs: Job[] = [];
for (let p = 0; p < pairs; p++) {
  const tasks = randomSplit(10, 1000 + p);
  jobs.push({ pair: p, name: 'a', classes: tasks[0]!, seed: 2 * p + 1 });
  jobs.push({ pair: p, name: 'b', classes: tasks[1]!, seed: 2 * p + 2 });
}

const logPath = (job: Job): string => join(values.out, `pair-${job.pair}`, `${job.name}.json`);

async function train(job: Job): Promise<void> {
  const dir = join(values.out, `pair-${job.pair}`);
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, `${job.name}-bn.onnx`)) && existsSync(logPath(job))) return;
  const { stdout } = await run(
    '/usr/bin/python3',
    [
      'scripts/torch-train-pair.py',
      '--classes',
      job.classes.join(','),
      '--seed',
      String(job.seed),
      '--epochs',
      String(epochs),
      '--threads',
      '1',
      '--out',
      join(dir, job.name),
    ],
    { maxBuffer: 1 << 20 },
  );
  const line = stdout.trim().split('\n').pop() ?? '';
  writeFileSync(logPath(job), `${line}\n`);
  console.log(`pair ${job.pair} ${job.name}: ${line}`);
}

/** pair.json of pair p, once both its models are trained (so a pair is usable before the run ends). */
function writePair(p: number): void {
  const [a, b] = jobs.filter((j) => j.pair === p) as [Job, Job];
  if (!existsSync(logPath(a)) || !existsSync(logPath(b))) return;
  const accuracy = (job: Job): number =>
    (JSON.parse(readFileSync(logPath(job), 'utf8')) as { testTaskAccuracy: number })
      .testTaskAccuracy;
  const pair = {
    what: `ResNet-20 x1 pair ${p} trained in PyTorch 1.13 with the reference's recipe (scripts/torch-train-pair.py, ${epochs} epochs) on the split and seeds of \`zipit experiment\`'s pair ${p}${p === 0 ? ' (the hyper-parameter pair)' : ''}. a.onnx/b.onnx: BatchNorm folded; a-bn.onnx/b-bn.onnx: BatchNorm kept.`,
    arch: 'resnet20',
    width: 1,
    tasks: [a.classes, b.classes],
    seeds: [a.seed, b.seed],
    epochs,
    preprocessing: { mean: [0.286], std: [0.353] },
    taskAccuracy: [accuracy(a), accuracy(b)],
    models: ['a-bn.onnx', 'b-bn.onnx'],
    folded: ['a.onnx', 'b.onnx'],
  };
  writeFileSync(join(values.out, `pair-${p}`, 'pair.json'), `${JSON.stringify(pair, null, 2)}\n`);
}

const queue = [...jobs];
await Promise.all(
  Array.from({ length: Number(values.parallel) }, async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      await train(job);
      writePair(job.pair);
    }
  }),
);

console.log(`${pairs} pairs in ${values.out}`);
