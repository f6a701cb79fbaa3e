/**
 * @file Our scores equal the reference scoring function's (fixtures/official-eval/scores.json) on
 * every fixture pair: each model, the ensemble (one head per task) and the logit average.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { modelScores } from '../../src/eval/evaluate.js';
import { scoreTasks, type ScoreSource } from '../../src/eval/metrics.js';
import { readModelFile } from '../../src/onnx/files.js';
import { TEST_DIR, TORCH_DIR } from '../helpers.js';

const OFFICIAL_DIR = join(TEST_DIR, 'fixtures', 'official-eval');

interface Scores {
  readonly joint: number;
  readonly task_a: number;
  readonly task_b: number;
  readonly avg: number;
}
interface Entry {
  readonly classes_a: number[];
  readonly classes_b: number[];
  readonly model_a: Scores;
  readonly model_b: Scores;
  readonly ensemble: Scores;
  readonly logit_average: Scores;
}

const official = JSON.parse(readFileSync(join(OFFICIAL_DIR, 'scores.json'), 'utf8')) as Record<
  string,
  Entry
>;
const dirs: Record<string, string> = {
  mlp: join(TORCH_DIR, 'mlp'),
  vgg: join(TORCH_DIR, 'vgg'),
  resnet8: join(TORCH_DIR, 'resnet8'),
  'zipit-trained-pair': join(OFFICIAL_DIR, 'zipit-trained-pair'),
};

const loaded = loadFashionMnist('test');
if (!loaded.ok) throw new Error(loaded.message);
const testSet = loaded.value;

async function logitsOf(path: string): Promise<ScoreSource> {
  const model = readModelFile(path);
  if (!model.ok) throw new Error(model.message);
  const scores = await modelScores(
    { model: model.value, label: path, mean: [0.286], std: [0.353] },
    testSet,
  );
  if (!scores.ok) throw new Error(scores.message);
  assert.equal(scores.value.length, 1);
  return scores.value[0]!;
}

/** The mean of two models' logits, in float32 as PyTorch computes it. */
function averageLogits(a: ScoreSource, b: ScoreSource): ScoreSource {
  const logits = a.logits.map((value, i) => Math.fround(Math.fround(value + b.logits[i]!) / 2));
  return { labels: a.labels, logits };
}

function assertScores(name: string, got: ReturnType<typeof scoreTasks>, want: Scores): void {
  const pairs: [string, number, number][] = [
    ['joint', got.joint, want.joint],
    ['task A', got.tasks[0]!, want.task_a],
    ['task B', got.tasks[1]!, want.task_b],
    ['avg', got.avg, want.avg],
  ];
  for (const [what, value, expected] of pairs) {
    // The reference rounds to 4 decimals; 1e-4 is one image of 10,000.
    assert.ok(
      Math.abs(value - expected) <= 1e-4 + 1e-9,
      `${name} ${what}: ours ${value.toFixed(5)}, the reference's ${expected}`,
    );
  }
}

for (const [pair, entry] of Object.entries(official)) {
  test(`${pair}: model A, model B, ensemble and logit average score as the reference scores them`, async () => {
    const dir = dirs[pair];
    assert.ok(dir !== undefined, `no model folder for ${pair}`);
    const tasks = [entry.classes_a, entry.classes_b];
    const a = await logitsOf(join(dir, 'a.onnx'));
    const b = await logitsOf(join(dir, 'b.onnx'));
    const labels = testSet.labels;
    assertScores(`${pair} model A`, scoreTasks([a], labels, tasks), entry.model_a);
    assertScores(`${pair} model B`, scoreTasks([b], labels, tasks), entry.model_b);
    assertScores(`${pair} ensemble`, scoreTasks([a, b], labels, tasks), entry.ensemble);
    assertScores(
      `${pair} logit average`,
      scoreTasks([averageLogits(a, b)], labels, tasks),
      entry.logit_average,
    );
  });
}
