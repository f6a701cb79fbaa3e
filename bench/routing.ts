/**
 * @file Where a merged model's joint accuracy goes (issue "Models that merge"): joint scoring
 * first routes each image to the task whose softmax over its own classes has the largest
 * maximum, then predicts within that task. Prints, per task, the share of its test images routed
 * to it. One JSON line per model.
 *
 *   node --import tsx bench/routing.ts <merged.onnx> --tasks 0,2,4,6,8/1,3,5,7,9 [--mean 0.286 --std 0.353]
 *
 * For a one-output model; ties go to the earlier task (the reference's rule adds 2 to every
 * probability and takes the argmax, whose ties are rare enough not to move these shares).
 */
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { modelScores } from '../src/eval/evaluate.js';
import { readModelFile } from '../src/onnx/files.js';
import { storedPreprocessing } from '../src/onnx/preprocessing.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const path = args[0];
const tasksText = option('--tasks');
if (path === undefined || tasksText === undefined) {
  console.error(
    'usage: bench/routing.ts <merged.onnx> --tasks 0,2,4,6,8/1,3,5,7,9 [--mean m --std s]',
  );
  process.exit(2);
}
const tasks = tasksText.split('/').map((t) => t.split(',').map(Number));
const test = loadFashionMnist('test');
if (!test.ok) throw new Error(test.message);
const model = readModelFile(path);
if (!model.ok) throw new Error(model.message);
const stored = storedPreprocessing(model.value);
const mean = option('--mean') !== undefined ? [Number(option('--mean'))] : stored?.mean;
const std = option('--std') !== undefined ? [Number(option('--std'))] : stored?.std;
if (mean === undefined || std === undefined) throw new Error('pass --mean and --std');
const scores = await modelScores({ model: model.value, label: path, mean, std }, test.value);
if (!scores.ok) throw new Error(scores.message);
const { logits, labels } = scores.value[0]!;
const width = labels.length;
const columns = tasks.map((classes) => classes.map((c) => labels.indexOf(c)));

/** Largest softmax probability of image `row` over the logits `cols`. */
function maxProbability(row: number, cols: number[]): number {
  const values = cols.map((c) => logits[row * width + c]!);
  const top = Math.max(...values);
  return 1 / values.reduce((sum, v) => sum + Math.exp(v - top), 0);
}

const routed = tasks.map(() => 0);
const seen = tasks.map(() => 0);
for (let i = 0; i < test.value.count; i++) {
  const own = tasks.findIndex((classes) => classes.includes(test.value.labels[i]!));
  if (own < 0) continue;
  const probabilities = columns.map((cols) => maxProbability(i, cols));
  const chosen = probabilities.indexOf(Math.max(...probabilities));
  seen[own]!++;
  if (chosen === own) routed[own]!++;
}
console.log(
  JSON.stringify({
    model: path,
    routedToOwnTask: routed.map((r, t) => Number(((100 * r) / seen[t]!).toFixed(1))),
  }),
);
