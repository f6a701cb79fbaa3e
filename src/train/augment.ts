/** @file Training-time augmentation: seeded random crop (zero padding) and horizontal flip, written straight into a normalised batch. */
import type { Dataset } from '../data/dataset.js';
import type { Random } from '../tensor/random.js';

/** Augmentation settings; `padding` 0 and `flip` false give the plain normalised images. */
export interface Augmentation {
  /** Pixels of zero padding before a random crop back to the original size (2 or 4 are usual). */
  readonly padding: number;
  /** Mirror each image left-right with probability 1/2. */
  readonly flip: boolean;
}

/**
 * Fills `out` (`[indices.length, C, H, W]`) with the images at `indices`, each shifted by a
 * random offset in `[-padding, padding]` (uncovered pixels read as 0 before normalisation,
 * like a zero-padded crop) and maybe flipped, then normalised as `(p / 255 - mean[c]) / std[c]`.
 * Draws exactly three random numbers per image, so the stream does not depend on the settings.
 */
export function fillAugmentedBatch(
  ds: Dataset,
  indices: ArrayLike<number>,
  augmentation: Augmentation,
  mean: readonly number[],
  std: readonly number[],
  random: Random,
  out: Float32Array,
): void {
  const { channels, height, width } = ds;
  const plane = height * width;
  const imageBytes = channels * plane;
  const pad = augmentation.padding;
  for (let i = 0; i < indices.length; i++) {
    const source = indices[i]! * imageBytes;
    const dy = random.int(2 * pad + 1) - pad;
    const dx = random.int(2 * pad + 1) - pad;
    const flip = random.uniform() < 0.5 && augmentation.flip;
    for (let c = 0; c < channels; c++) {
      const scale = 1 / (255 * std[c]!);
      const zero = -mean[c]! / std[c]!;
      const inPlane = source + c * plane;
      const outPlane = (i * channels + c) * plane;
      for (let y = 0; y < height; y++) {
        const sy = y + dy;
        const row = outPlane + y * width;
        if (sy < 0 || sy >= height) {
          out.fill(zero, row, row + width);
          continue;
        }
        const inRow = inPlane + sy * width;
        for (let x = 0; x < width; x++) {
          const sx = (flip ? width - 1 - x : x) + dx;
          out[row + x] = sx < 0 || sx >= width ? zero : ds.images[inRow + sx]! * scale + zero;
        }
      }
    }
  }
}

/** Per-channel mean and std of `pixel / 255` over a whole dataset (the normalisation a model is trained with). */
export function channelStatistics(ds: Dataset): { mean: number[]; std: number[] } {
  const plane = ds.height * ds.width;
  const sums = new Float64Array(ds.channels);
  const squares = new Float64Array(ds.channels);
  for (let n = 0; n < ds.count; n++) {
    for (let c = 0; c < ds.channels; c++) {
      const start = (n * ds.channels + c) * plane;
      let s = 0;
      let q = 0;
      for (let k = start; k < start + plane; k++) {
        const v = ds.images[k]!;
        s += v;
        q += v * v;
      }
      sums[c] = sums[c]! + s;
      squares[c] = squares[c]! + q;
    }
  }
  const count = ds.count * plane;
  const mean = Array.from(sums, (s) => s / count / 255);
  const std = Array.from(squares, (q, c) =>
    Math.sqrt(Math.max(q / count / 65025 - mean[c]! ** 2, 1e-12)),
  );
  return { mean, std };
}
