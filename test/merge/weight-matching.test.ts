/**
 * @file Weight matching (Git Re-Basin) against independent truth: it undoes a function-preserving
 * permutation exactly, its one-space optimum equals brute force over all 5! permutations, its
 * objective never decreases across sweeps, and the CLI's `--method weights` writes a model that runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { analyzeSpaces } from '../../src/graph/spaces.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { Model } from '../../src/onnx/model.js';
import { float32Tensor } from '../../src/onnx/tensor.js';
import { readModelFile } from '../../src/onnx/files.js';
import { mergeModels, analyzeModels } from '../../src/merge/pipeline.js';
import { permuteChannels } from '../../src/merge/permute-model.js';
import { checkSameStructure } from '../../src/merge/structure.js';
import { matchWeights, type WeightMatchingResult } from '../../src/merge/weight-matching.js';
import { Random } from '../../src/tensor/random.js';
import {
  fixtureModel,
  fixturePairs,
  maxAbsDiff,
  probeInput,
  runModel,
  runZipit,
  TORCH_DIR,
  zooModel,
} from '../helpers.js';

const train = loadFashionMnist('train');
if (!train.ok) throw new Error(train.message);
// Weight matching reads no data; mergeModels still takes a merge set (for the corrections).
const mergeData = takeBalanced(train.value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 20, 1);
if (!mergeData.ok) throw new Error(mergeData.message);
const normalization = { mean: [0.286], std: [0.353] };

/** Weight matching of two models over all their non-fixed spaces. */
function weightMatch(models: readonly Model[], seed = 0): WeightMatchingResult {
  const graphs = analyzeModels(models, ['A', 'B']);
  assert.ok(graphs.ok, graphs.ok ? '' : graphs.message);
  const spaces = analyzeSpaces(graphs.value[0]!);
  assert.ok(spaces.ok, spaces.ok ? '' : spaces.message);
  const maps = checkSameStructure(graphs.value, ['A', 'B']);
  assert.ok(maps.ok, maps.ok ? '' : maps.message);
  const mergeable = spaces.value.spaces.filter((s) => s.kind !== 'fixed');
  const found = matchWeights(graphs.value, maps.value.initializers, spaces.value, mergeable, {
    seed,
  });
  assert.ok(found.ok, found.ok ? '' : found.message);
  return found.value;
}

const cases: [string, () => Model][] = [
  ['MLP (zoo)', () => zooModel('mlp')],
  ['VGG with BatchNorm (zoo)', () => zooModel('vgg')],
  ['ResNet-20 with BatchNorm, residual spaces (zoo)', () => zooModel('resnet20')],
  ['ResNet-8, BN folded (PyTorch export)', () => fixtureModel('resnet8', 'a')],
];

for (const [name, make] of cases) {
  test(`weight matching undoes a function-preserving permutation exactly: ${name}`, async () => {
    const a = make();
    const b = permuteChannels(a, 11);
    assert.ok(b.ok);
    const found = weightMatch([a, b.value.model]);
    assert.equal(found.matchings.size, b.value.permutations.size);
    for (const [space, perm] of b.value.permutations) {
      // B's channel c is A's channel perm[c], so A's channel i is B's channel inverse[i].
      const inverse = new Int32Array(perm.length);
      perm.forEach((from, c) => (inverse[from] = c));
      const matching = found.matchings.get(space);
      assert.ok(matching !== undefined, `space ${space} has no matching`);
      assert.deepEqual(
        matching.groups,
        [...inverse].map((j, i) => [i, perm.length + j]),
        `space ${space}: not the inverse permutation`,
      );
    }

    const merged = await mergeModels(
      [a, b.value.model],
      ['A', 'B'],
      mergeData.value,
      normalization,
      {
        method: 'weights',
        repair: false,
      },
    );
    assert.ok(merged.ok, merged.ok ? '' : merged.message);
    assert.equal(merged.value.report.method, 'weights');
    assert.equal(merged.value.report.seconds.statistics < 0.05, true, 'no statistics pass');
    const input = probeInput();
    const outA = await runModel(a, input);
    const outMerged = await runModel(merged.value.model, input);
    const key = Object.keys(outA)[0]!;
    const diff = maxAbsDiff(outA[key]!, outMerged[key]!);
    assert.ok(diff < 1e-4, `merged outputs differ from A's by ${diff}`);
  });
}

/** x [N, 3] -> Gemm(5) -> Relu -> Gemm(2): one mergeable space of width 5. */
function tinyMlp(seed: number): Model {
  const random = new Random(seed);
  const values = (count: number): Float32Array =>
    Float32Array.from({ length: count }, () => random.normal());
  const b = new GraphBuilder('tiny-mlp');
  const x = b.input('input', ['N', 3]);
  const w1 = b.weight('fc1.weight', float32Tensor([5, 3], values(15)));
  const b1 = b.weight('fc1.bias', float32Tensor([5], values(5)));
  const w2 = b.weight('fc2.weight', float32Tensor([2, 5], values(10)));
  const b2 = b.weight('fc2.bias', float32Tensor([2], values(2)));
  const hidden = b.op('Relu', [b.op('Gemm', [x, w1, b1], { transB: 1 })]);
  b.node('Gemm', [hidden, w2, b2], { transB: 1 }, { name: 'fc2', outputs: ['logits'] });
  b.output('logits', ['N', 2]);
  return b.build();
}

/** All permutations of 0..n-1. */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, at) => [...p.slice(0, at), n - 1, ...p.slice(at)]),
  );
}

test('one space: weight matching is the brute-force optimum over all 5! permutations', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const a = tinyMlp(seed);
    const b = tinyMlp(100 + seed);
    const weights = (m: Model, name: string): Float32Array =>
      m.graph.initializers.get(name)!.data as Float32Array;
    // <W_A, P W_B> summed over fc1's rows, fc1's bias and fc2's columns; i of A meets pi(i) of B.
    const score = (pi: readonly number[]): number => {
      let sum = 0;
      for (let i = 0; i < 5; i++) {
        const j = pi[i]!;
        for (let t = 0; t < 3; t++)
          sum += weights(a, 'fc1.weight')[i * 3 + t]! * weights(b, 'fc1.weight')[j * 3 + t]!;
        sum += weights(a, 'fc1.bias')[i]! * weights(b, 'fc1.bias')[j]!;
        for (let o = 0; o < 2; o++)
          sum += weights(a, 'fc2.weight')[o * 5 + i]! * weights(b, 'fc2.weight')[o * 5 + j]!;
      }
      return sum;
    };
    const all = permutations(5);
    assert.equal(all.length, 120);
    const best = Math.max(...all.map(score));
    const found = weightMatch([a, b]);
    assert.equal(found.matchings.size, 1);
    const groups = [...found.matchings.values()][0]!.groups;
    const pi = groups.map((g) => g[1]! - 5);
    assert.ok(
      Math.abs(score(pi) - best) < 1e-9,
      `seed ${seed}: ${score(pi)} vs brute force ${best}`,
    );
    // The objective counts the weights touching the permuted space (not fc2's bias).
    assert.ok(Math.abs(found.objectives[0]!.at(-1)! - best) < 1e-9);
  }
});

test('the objective never decreases across sweeps (random ResNet-20 pair)', () => {
  for (const seed of [0, 7]) {
    const found = weightMatch([zooModel('resnet20', 1), zooModel('resnet20', 2)], seed);
    const objectives = found.objectives[0]!;
    assert.ok(objectives.length >= 3, `only ${objectives.length - 1} sweeps`);
    for (let s = 1; s < objectives.length; s++)
      assert.ok(
        objectives[s]! >= objectives[s - 1]! - 1e-9 * Math.abs(objectives[s - 1]!),
        `sweep ${s}: ${objectives[s]} < ${objectives[s - 1]}`,
      );
    assert.ok(objectives.at(-1)! > objectives[0]!, 'matching improves on the identity');
  }
});

test('started from the true permutations, no sweep changes them', () => {
  const a = zooModel('resnet20');
  const b = permuteChannels(a, 11);
  assert.ok(b.ok);
  const graphs = analyzeModels([a, b.value.model], ['A', 'B']);
  assert.ok(graphs.ok);
  const spaces = analyzeSpaces(graphs.value[0]!);
  assert.ok(spaces.ok);
  const maps = checkSameStructure(graphs.value, ['A', 'B']);
  assert.ok(maps.ok);
  const inverses = new Map<number, Int32Array>();
  for (const [space, perm] of b.value.permutations) {
    const inverse = new Int32Array(perm.length);
    perm.forEach((from, c) => (inverse[from] = c));
    inverses.set(space, inverse);
  }
  const mergeable = spaces.value.spaces.filter((s) => s.kind !== 'fixed');
  const found = matchWeights(graphs.value, maps.value.initializers, spaces.value, mergeable, {
    initial: [inverses],
  });
  assert.ok(found.ok);
  const objectives = found.value.objectives[0]!;
  assert.equal(objectives.length, 2, 'one sweep, which changes nothing');
  assert.equal(objectives[1], objectives[0]);
  for (const [space, inverse] of inverses)
    assert.deepEqual(
      found.value.matchings.get(space)!.groups.map((g) => g[1]! - inverse.length),
      [...inverse],
    );
});

test('K = 3: every model is matched to model 0', () => {
  const a = zooModel('mlp');
  const b = permuteChannels(a, 3);
  const c = permuteChannels(a, 4);
  assert.ok(b.ok);
  assert.ok(c.ok);
  const graphs = analyzeModels([a, b.value.model, c.value.model], ['A', 'B', 'C']);
  assert.ok(graphs.ok);
  const spaces = analyzeSpaces(graphs.value[0]!);
  assert.ok(spaces.ok);
  const maps = checkSameStructure(graphs.value, ['A', 'B', 'C']);
  assert.ok(maps.ok);
  const mergeable = spaces.value.spaces.filter((s) => s.kind !== 'fixed');
  const found = matchWeights(graphs.value, maps.value.initializers, spaces.value, mergeable);
  assert.ok(found.ok);
  assert.equal(found.value.objectives.length, 2);
  for (const space of mergeable) {
    const n = space.width;
    const pb: Int32Array = b.value.permutations.get(space.id)!;
    const pc: Int32Array = c.value.permutations.get(space.id)!;
    for (const [i, group] of found.value.matchings.get(space.id)!.groups.entries()) {
      assert.equal(group.length, 3);
      assert.equal(group[0], i);
      assert.equal(pb[group[1]! - n], i);
      assert.equal(pc[group[2]! - 2 * n], i);
    }
  }
});

test('EXPECTED FAILURE - weight matching with a merged width other than the per-model width', async () => {
  const a = zooModel('mlp');
  const merged = await mergeModels([a, a], ['A', 'B'], mergeData.value, normalization, {
    method: 'weights',
    match: { mergedWidth: 3 },
    repair: false,
  });
  assert.ok(!merged.ok);
  assert.equal(merged.reason, 'bad-argument');
  assert.match(
    merged.message,
    /^Space \d+: Expected --merged-width to be \d+ \(the per-model width\) for weights, got 3$/,
  );
});

test('EXPECTED FAILURE - weight matching given statistics files', async () => {
  const a = zooModel('mlp');
  const merged = await mergeModels([a, a], ['A', 'B'], mergeData.value, normalization, {
    method: 'weights',
    statistics: new Map(),
  });
  assert.deepEqual(merged, {
    ok: false,
    reason: 'bad-argument',
    message: 'Expected no statistics files with --method weights: it matches on the weights alone.',
  });
});

test('CLI: zipit merge --method weights writes a model that runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zipit-weights-'));
  try {
    const out = join(dir, 'merged.onnx');
    const pair = fixturePairs().find((p) => p.dir === 'resnet8')!;
    const run = await runZipit([
      'merge',
      join(TORCH_DIR, 'resnet8', 'a.onnx'),
      join(TORCH_DIR, 'resnet8', 'b.onnx'),
      '--method',
      'weights',
      '--tasks',
      `${pair.classes_a.join(',')}/${pair.classes_b.join(',')}`,
      '--mean',
      '0.2860',
      '--std',
      '0.3530',
      '--samples',
      '100',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { method: string; correction: string };
    assert.equal(report.method, 'weights');
    const model = readModelFile(out);
    assert.ok(model.ok, model.ok ? '' : model.message);
    assert.equal(model.value.metadata['zipit.method'], 'weights');
    const output = Object.values(await runModel(model.value, probeInput()))[0]!;
    assert.ok(output.length > 0 && output.every(Number.isFinite));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
