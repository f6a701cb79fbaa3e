/**
 * @file Where a merged model's joint accuracy goes (issue "Models that merge"): joint scoring
 * first routes each image to the task whose softmax over its own classes has the largest
 * maximum, then predicts within that task. Prints, per task, the share of its test images routed
 * to it. One JSON line per model.
 *
 *   node --import tsx bench/routing.ts <merged.onnx> --tasks 0,2,4,6,8/1,3,5,7,9 [--mean 0.286 --std 0.353]
 *
 * The routing is the joint prediction's own (`predictImages`, the scoring's rules, ties included).
 */
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { modelScores } from '../src/eval/evaluate.js';
import { predictImages } from '../src/eval/metrics.js';
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
const routed = tasks.map(() => 0);
const seen = tasks.map(() => 0);
predictImages(scores.value, test.value.labels, tasks, (_label, t, jointClass) => {
  seen[t]!++;
  if (tasks[t]!.includes(jointClass)) routed[t]!++;
});
console.log(
  JSON.stringify({
    model: path,
    routedToOwnTask: routed.map((r, t) => Number(((100 * r) / seen[t]!).toFixed(1))),
  }),
);
