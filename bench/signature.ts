/**
 * @file The "signature" of a model trained on one class set (issue "Models that merge"): how it
 * answers on the other classes' images and how large its classifier rows are. Prints one JSON
 * line per model.
 *
 *   node --import tsx bench/signature.ts <model.onnx> --classes 0,2,4,6,8 [--mean 0.286 --std 0.353]
 *
 * - task: accuracy on its own classes' test images (argmax among its classes);
 * - other: accuracy on the other classes' test images, argmax among the other classes (what
 *   the model "knows" of a task it never saw: 20% is chance for 5 classes);
 * - otherTopShare: the share of those images sent to the single most-predicted class (1.0 =
 *   one constant answer, the collapse);
 * - rowSums: per class, the sum of its classifier row (last Gemm) over the pooled features,
 *   as [min, max] over trained and over untrained classes.
 */
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { modelScores } from '../src/eval/evaluate.js';
import { readModelFile } from '../src/onnx/files.js';
import { storedPreprocessing } from '../src/onnx/preprocessing.js';
import { tensorToNumbers } from '../src/onnx/tensor.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const paths = args.filter((a, i) => a.endsWith('.onnx') && !args[i - 1]?.startsWith('--'));
const test = loadFashionMnist('test');
if (!test.ok) throw new Error(test.message);

for (const path of paths) {
  const model = readModelFile(path);
  if (!model.ok) throw new Error(model.message);
  const stored = storedPreprocessing(model.value);
  const mean = option('--mean')?.split(',').map(Number) ?? stored?.mean ?? [0.286];
  const std = option('--std')?.split(',').map(Number) ?? stored?.std ?? [0.353];
  const classesText = option('--classes') ?? model.value.metadata['zipit.trained_classes'];
  if (classesText === undefined) throw new Error(`${path}: give --classes`);
  const own = classesText.split(',').map(Number);
  const other = Array.from({ length: 10 }, (_, c) => c).filter((c) => !own.includes(c));
  const scores = await modelScores({ model: model.value, label: path, mean, std }, test.value);
  if (!scores.ok) throw new Error(scores.message);
  const { labels, logits } = scores.value[0]!;
  const width = labels.length;
  const pick = (image: number, among: readonly number[]): number => {
    let best = among[0]!;
    for (const c of among)
      if (
        logits[image * width + labels.indexOf(c)]! > logits[image * width + labels.indexOf(best)]!
      )
        best = c;
    return best;
  };
  let taskRight = 0;
  let taskTotal = 0;
  let otherRight = 0;
  let otherTotal = 0;
  const otherCounts = new Map<number, number>();
  test.value.labels.forEach((label, image) => {
    if (own.includes(label)) {
      taskTotal++;
      if (pick(image, own) === label) taskRight++;
    } else {
      otherTotal++;
      const guess = pick(image, other);
      otherCounts.set(guess, (otherCounts.get(guess) ?? 0) + 1);
      if (guess === label) otherRight++;
    }
  });
  const head = [...model.value.graph.nodes].reverse().find((n) => n.opType === 'Gemm');
  const weight = head ? model.value.graph.initializers.get(head.inputs[1]!) : undefined;
  const rowSums: number[] = [];
  if (weight && weight.dims.length === 2) {
    const values = tensorToNumbers(weight);
    const transposed = head!.attributes['transB']?.value !== 1;
    const [rows, cols] = transposed
      ? [weight.dims[1]!, weight.dims[0]!]
      : [weight.dims[0]!, weight.dims[1]!];
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += values[transposed ? c * rows + r : r * cols + c]!;
      rowSums.push(sum);
    }
  }
  const range = (values: number[]): [number, number] => [
    Number(Math.min(...values).toFixed(2)),
    Number(Math.max(...values).toFixed(2)),
  ];
  console.log(
    JSON.stringify({
      model: path,
      classes: own,
      task: Number((taskRight / taskTotal).toFixed(4)),
      other: Number((otherRight / otherTotal).toFixed(4)),
      otherTopShare: Number((Math.max(...otherCounts.values()) / otherTotal).toFixed(3)),
      rowSums:
        rowSums.length === 10
          ? {
              trained: range(own.map((c) => rowSums[c]!)),
              untrained: range(other.map((c) => rowSums[c]!)),
            }
          : null,
    }),
  );
}
