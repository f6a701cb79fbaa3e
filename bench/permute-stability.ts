/**
 * @file Is a pair's Permute merge on a knife's edge? Merges the pair with Permute (sources reset,
 * 5,000 merge images, BN reset after) once as it is and then with every correlation perturbed,
 * and reports per run how many spaces got another permutation, the dead channels (all-zero
 * correlation rows) per space, and the joint accuracy.
 *
 *   node --import tsx bench/permute-stability.ts <pair> [--samples 5000] [--runs 4]
 *
 * Perturbations: relative (r (1 + 1e-6 z), r (1 + 1e-5 z)) and absolute (r + 1e-9 z), z standard
 * normal, seeded. If none changes a permutation, the matching is stable where float32
 * statistics (the reference's) could move it.
 */
import { parseArgs } from 'node:util';
import { takeBalanced } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { modelScores } from '../src/eval/evaluate.js';
import { scoreTasks } from '../src/eval/metrics.js';
import { matchers } from '../src/match/index.js';
import type { Matcher } from '../src/match/types.js';
import { mergeModels } from '../src/merge/pipeline.js';
import { resetSources } from '../src/merge/source-reset.js';
import { Random } from '../src/tensor/random.js';
import { loadPair } from './pairs.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    samples: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '4' },
  },
});
const check = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const pair = loadPair(positionals[0] ?? 'models/resnet20-pair');
const train = check(loadFashionMnist('train'));
const test = check(loadFashionMnist('test'));
const data = check(takeBalanced(train, pair.tasks.flat(), Number(values.samples), 0));
const sources = check(
  await resetSources(pair.models, pair.names, data, pair.normalization, { threads: 2 }),
);

type Perturbation = { label: string; apply: (r: number, z: number) => number };
const perturbations: Perturbation[] = [
  { label: 'none', apply: (r) => r },
  ...Array.from({ length: Number(values.runs) }, (_, i): Perturbation[] => [
    { label: `relative 1e-6, seed ${i}`, apply: (r, z) => r * (1 + 1e-6 * z) },
    { label: `relative 1e-5, seed ${i}`, apply: (r, z) => r * (1 + 1e-5 * z) },
    { label: `absolute 1e-9, seed ${i}`, apply: (r, z) => r + 1e-9 * z },
  ]).flat(),
];

const original: Matcher = matchers.permute;
let current = perturbations[0]!;
let random = new Random(0);
let changed = 0;
let dead: string[] = [];
// The pipeline looks the matcher up in `matchers` for every space: wrap it.
(matchers as Record<string, Matcher>)['permute'] = (correlation, numModels, width, options) => {
  const total = numModels * width;
  let zeroRows = 0;
  for (let i = 0; i < total; i++) {
    let zero = true;
    for (let j = 0; j < total && zero; j++) zero = correlation[i * total + j] === 0;
    if (zero) zeroRows++;
  }
  dead.push(`${width}:${zeroRows}`);
  const perturbed = correlation.map((r) =>
    Number.isFinite(r) ? current.apply(r, random.normal()) : r,
  );
  const plain = original(correlation, numModels, width, options);
  const moved = original(perturbed, numModels, width, options);
  if (
    plain.ok &&
    moved.ok &&
    JSON.stringify(plain.value.groups) !== JSON.stringify(moved.value.groups)
  )
    changed++;
  return moved;
};

for (const [i, perturbation] of perturbations.entries()) {
  current = perturbation;
  random = new Random(i);
  changed = 0;
  dead = [];
  const merged = check(
    await mergeModels(sources, pair.names, data, pair.normalization, {
      method: 'permute',
      resetSources: 'already',
      threads: 2,
    }),
  );
  const scores = check(
    await modelScores({ model: merged.model, label: 'Permute', ...pair.normalization }, test, {
      threads: 2,
    }),
  );
  const accuracy = scoreTasks(scores, test.labels, pair.tasks);
  console.log(
    `${perturbation.label}: ${changed} of ${dead.length} spaces with another permutation; joint ${(100 * accuracy.joint).toFixed(1)}, tasks ${accuracy.tasks.map((t) => (100 * t).toFixed(1)).join(' / ')}; all-zero correlation rows per space (width:rows) ${dead.join(' ')}`,
  );
}
