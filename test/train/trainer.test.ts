/** @file A tiny training run on synthetic data: the loss falls, the run is deterministic, the export is the zoo's structure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Dataset } from '../../src/data/dataset.js';
import { storedClassLabels, storedPreprocessing } from '../../src/onnx/preprocessing.js';
import { Random } from '../../src/tensor/random.js';
import { cosineLearningRate } from '../../src/train/schedule.js';
import { fillAugmentedBatch } from '../../src/train/augment.js';
import {
  checkTrainOptions,
  fillTargets,
  taskAccuracy,
  trainModel,
  type TrainOptions,
} from '../../src/train/trainer.js';
import { buildZooModel } from '../../src/zoo/architectures.js';

/** 4 classes of 8x8 images: a bright square in one of the four quadrants, plus noise. */
function quadrants(count: number, seed: number): Dataset {
  const random = new Random(seed);
  const images = new Uint8Array(count * 64);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const label = n % 4;
    labels[n] = label;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const inside = (y < 4 ? 0 : 2) + (x < 4 ? 0 : 1) === label;
        images[n * 64 + y * 8 + x] = Math.min(255, (inside ? 160 : 30) + random.int(60));
      }
    }
  }
  return { images, labels, count, channels: 1, height: 8, width: 8, numClasses: 4 };
}

/**
 * 4 classes of 8x8 textures seen in every patch: horizontal stripes, vertical stripes, a
 * checkerboard, flat grey; plus noise. (A ViT at its start averages its tokens evenly, so
 * quadrants, told apart by which token is bright, take it far longer to learn.)
 */
function textures(count: number, seed: number): Dataset {
  const random = new Random(seed);
  const images = new Uint8Array(count * 64);
  const labels = new Uint8Array(count);
  const patterns = [
    (y: number) => y % 2,
    (_: number, x: number) => x % 2,
    (y: number, x: number) => (x + y) % 2,
    () => 0.5,
  ];
  for (let n = 0; n < count; n++) {
    const label = n % 4;
    labels[n] = label;
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++)
        images[n * 64 + y * 8 + x] = Math.round(40 + 150 * patterns[label]!(y, x) + random.int(60));
  }
  return { images, labels, count, channels: 1, height: 8, width: 8, numClasses: 4 };
}

const base: TrainOptions = {
  arch: 'resnet20',
  width: 1,
  seed: 7,
  classes: [0, 1, 2, 3],
  epochs: 3,
  batchSize: 16,
  learningRate: 0.05,
  threads: 1,
  augmentation: { padding: 1, flip: false },
};

describe('trainModel', () => {
  it('lowers the loss, learns the task and exports the zoo structure with the head and metadata', async () => {
    const result = await trainModel(quadrants(160, 1), {
      ...base,
      classes: [1, 2, 3],
      head: 'own',
    });
    assert.ok(result.ok, !result.ok ? result.message : '');
    const { model, summary } = result.value;
    assert.ok(
      summary.epochs[2]!.loss < summary.epochs[0]!.loss * 0.7,
      `loss ${summary.epochs.map((e) => e.loss.toFixed(3)).join(' -> ')}`,
    );
    const zoo = buildZooModel({
      arch: 'resnet20',
      width: 1,
      seed: 7,
      inputShape: [1, 8, 8],
      classLabels: [1, 2, 3],
      preprocessing: { mean: [0], std: [1] },
    });
    assert.ok(zoo.ok);
    assert.deepEqual(
      [...model.graph.initializers.keys()],
      [...zoo.value.graph.initializers.keys()],
    );
    assert.deepEqual(
      model.graph.nodes.map((n) => n.opType),
      zoo.value.graph.nodes.map((n) => n.opType),
    );
    assert.deepEqual(storedClassLabels(model), [[1, 2, 3]]);
    const runningVar = model.graph.initializers.get('bn1.running_var')!.data as Float32Array;
    assert.ok(
      runningVar.some((v) => Math.abs(v - 1) > 1e-3),
      'running statistics were updated',
    );
    const accuracy = await taskAccuracy(
      model,
      quadrants(80, 2),
      [1, 2, 3],
      [1, 2, 3],
      storedPreprocessing(model)!,
      { threads: 1 },
    );
    assert.ok(accuracy.ok);
    assert.ok(accuracy.value > 0.9, `task accuracy ${accuracy.value}`);
  });

  it('trains the zoo ViT: the loss falls, the task is learnt, constants stay as they were', async () => {
    const result = await trainModel(textures(320, 1), {
      ...base,
      arch: 'vit',
      epochs: 8,
      learningRate: 0.1,
      augmentation: { padding: 0, flip: false },
    });
    assert.ok(result.ok, !result.ok ? result.message : '');
    const { model, summary } = result.value;
    const losses = summary.epochs.map((e) => e.loss);
    assert.ok(
      losses[7]! < losses[0]! * 0.5,
      `loss ${losses.map((l) => l.toFixed(3)).join(' -> ')}`,
    );
    const zoo = buildZooModel({
      arch: 'vit',
      width: 1,
      seed: 7,
      inputShape: [1, 8, 8],
      classLabels: [0, 1, 2, 3],
      preprocessing: { mean: [0], std: [1] },
    });
    assert.ok(zoo.ok);
    for (const [name, before] of zoo.value.graph.initializers) {
      const after = model.graph.initializers.get(name)!;
      const changed = after.data.some((v, i) => v !== before.data[i]);
      // Shapes, the class token's index and GELU's and attention's scalars are constants.
      assert.equal(changed, before.dtype === 'float32' && before.dims.length > 0, name);
    }
    const accuracy = await taskAccuracy(
      model,
      textures(80, 2),
      [0, 1, 2, 3],
      [0, 1, 2, 3],
      storedPreprocessing(model)!,
      { threads: 1 },
    );
    assert.ok(accuracy.ok);
    assert.ok(accuracy.value > 0.9, `task accuracy ${accuracy.value}`);
  });

  it('gives bit-identical weights for the same seed and different ones for another seed', async () => {
    const options = { ...base, arch: 'mlp' as const, epochs: 1 };
    const [a, b, c] = await Promise.all([
      trainModel(quadrants(64, 1), options),
      trainModel(quadrants(64, 1), options),
      trainModel(quadrants(64, 1), { ...options, seed: 8 }),
    ]);
    assert.ok(a.ok && b.ok && c.ok);
    const weights = (r: typeof a) =>
      r.ok
        ? Buffer.from(
            (r.value.model.graph.initializers.get('fc1.weight')!.data as Float32Array).buffer,
          )
        : Buffer.alloc(0);
    assert.ok(weights(a).equals(weights(b)));
    assert.ok(!weights(a).equals(weights(c)));
  });

  it("with label smoothing the loss stays above the smoothed targets' entropy, without it falls below", async () => {
    // Two trained classes, eps 0.4: each target is (0.8, 0.2) over them, whose cross-entropy
    // cannot fall below its entropy, 0.500; one-hot targets have no such floor.
    const options = {
      ...base,
      arch: 'mlp' as const,
      epochs: 6,
      learningRate: 0.01,
      classes: [0, 3],
    };
    const [plain, smoothed] = await Promise.all([
      trainModel(quadrants(160, 1), options),
      trainModel(quadrants(160, 1), { ...options, labelSmoothing: 0.4 }),
    ]);
    assert.ok(plain.ok && smoothed.ok);
    const floor = -(0.8 * Math.log(0.8) + 0.2 * Math.log(0.2));
    const last = (r: typeof plain) => (r.ok ? r.value.summary.epochs.at(-1)!.loss : NaN);
    assert.ok(last(plain) < 0.8 * floor, `plain loss ${last(plain)}`);
    assert.ok(last(smoothed) >= floor - 1e-4, `smoothed loss ${last(smoothed)}`);
    assert.ok(last(smoothed) < floor + 0.15, `smoothed loss ${last(smoothed)}`);
    assert.equal(smoothed.value.model.metadata['zipit.label_smoothing'], '0.4');
    assert.equal(plain.value.model.metadata['zipit.label_smoothing'], undefined);
  });

  it('a larger --weight-decay leaves smaller weights, and the model records it', async () => {
    const options = {
      ...base,
      arch: 'mlp' as const,
      epochs: 3,
      learningRate: 0.05,
      classes: [0, 3],
    };
    const [none, strong] = await Promise.all([
      trainModel(quadrants(160, 1), { ...options, weightDecay: 0 }),
      trainModel(quadrants(160, 1), { ...options, weightDecay: 0.5 }),
    ]);
    assert.ok(none.ok && strong.ok);
    const norm = (r: typeof none) => {
      let sum = 0;
      if (r.ok)
        for (const t of r.value.model.graph.initializers.values())
          for (const v of t.data as Float32Array) sum += v * v;
      return Math.sqrt(sum);
    };
    assert.ok(norm(strong) < 0.8 * norm(none), `norms ${norm(strong)} vs ${norm(none)}`);
    assert.equal(strong.value.model.metadata['zipit.weight_decay'], '0.5');
    assert.equal(none.value.model.metadata['zipit.weight_decay'], '0');
  });

  it('EXPECTED FAILURE - a negative or non-finite weight decay', () => {
    for (const decay of [-1e-4, NaN, Infinity]) {
      const checked = checkTrainOptions({ ...base, classes: [0], weightDecay: decay }, 4);
      assert.ok(!checked.ok);
      assert.equal(checked.message, `Expected --weight-decay to be a number >= 0, got ${decay}`);
    }
  });

  it('EXPECTED FAILURE - label smoothing outside [0, 1)', () => {
    for (const eps of [1, -0.1, NaN]) {
      const checked = checkTrainOptions({ ...base, classes: [0], labelSmoothing: eps }, 4);
      assert.ok(!checked.ok);
      assert.equal(checked.message, `Expected --label-smoothing to be in [0, 1), got ${eps}`);
    }
  });

  it('EXPECTED FAILURE - classes outside the label space', async () => {
    const result = await trainModel(quadrants(32, 1), { ...base, classes: [0, 9] });
    assert.ok(!result.ok);
    assert.equal(result.message, 'Expected classes 0..3 in --classes, got 9');
  });
});

describe('fillTargets', () => {
  it('puts 1 - eps on the label and eps / k on each of the k trained logits, 0 elsewhere', () => {
    const out = new Float32Array(2 * 5).fill(9);
    fillTargets(out, (i) => [1, 4][i]!, [1, 3, 4], 5, 0.3);
    const expected = [0, 0.8, 0, 0.1, 0.1, 0, 0.1, 0, 0.1, 0.8];
    expected.forEach((v, i) => assert.ok(Math.abs(out[i]! - v) < 1e-6, `${i}: ${out[i]}`));
    fillTargets(out, (i) => [1, 4][i]!, [1, 3, 4], 5, 0);
    assert.deepEqual([...out], [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
  });
});

describe('schedule and augmentation', () => {
  it('warms up linearly, peaks, and decays to zero by cosine', () => {
    assert.equal(cosineLearningRate(0, 100, 0.1, 10), 0.01);
    assert.ok(Math.abs(cosineLearningRate(9, 100, 0.1, 10) - 0.1) < 1e-12);
    assert.ok(Math.abs(cosineLearningRate(55, 100, 0.1, 10) - 0.05) < 1e-12);
    assert.ok(cosineLearningRate(100, 100, 0.1, 10) < 1e-12);
  });

  it('without padding or flips only normalises; with them it stays seeded', () => {
    const ds = quadrants(2, 1);
    const out = new Float32Array(128);
    fillAugmentedBatch(ds, [0, 1], { padding: 0, flip: false }, [0.5], [0.25], new Random(1), out);
    assert.ok(Math.abs(out[9]! - (ds.images[9]! / 255 - 0.5) / 0.25) < 1e-6);
    const again = new Float32Array(128);
    const other = new Float32Array(128);
    fillAugmentedBatch(ds, [0, 1], { padding: 2, flip: true }, [0.5], [0.25], new Random(1), again);
    fillAugmentedBatch(ds, [0, 1], { padding: 2, flip: true }, [0.5], [0.25], new Random(1), other);
    assert.deepEqual(again, other);
  });
});
