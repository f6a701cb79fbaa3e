/** @file Float64 reference statistics and random activations for the statistics tests. */
import type { BatchMoments } from '../../src/stats/covariance.js';
import type { ActivationBatch } from '../../src/tensor/activations.js';
import { Random } from '../../src/tensor/random.js';

/** Stacked features of one batch as rows [Kn][P] in float64, NaN read as 0. */
export function stackedRows(batch: readonly ActivationBatch[]): Float64Array[] {
  const rows: Float64Array[] = [];
  for (const a of batch) {
    const [n, c] = [a.dims[0]!, a.dims[1]!];
    const spatial = a.dims.slice(2).reduce((x, d) => x * d, 1);
    for (let ch = 0; ch < c; ch++) {
      const row = new Float64Array(n * spatial);
      for (let i = 0; i < n; i++) {
        for (let s = 0; s < spatial; s++) {
          const v = a.data[(i * c + ch) * spatial + s]!;
          row[i * spatial + s] = Number.isNaN(v) ? 0 : v;
        }
      }
      rows.push(row);
    }
  }
  return rows;
}

/** Two-pass float64 mean, covariance and correlation over all batches (the reference). */
export function referenceStatistics(batches: readonly (readonly ActivationBatch[])[]): {
  count: number;
  mean: Float64Array;
  covariance: Float64Array;
  correlation: Float64Array;
} {
  const all = batches.map(stackedRows);
  const kn = all[0]!.length;
  const count = all.reduce((t, rows) => t + rows[0]!.length, 0);
  const mean = new Float64Array(kn);
  for (const rows of all) for (let i = 0; i < kn; i++) for (const v of rows[i]!) mean[i]! += v;
  for (let i = 0; i < kn; i++) mean[i] = mean[i]! / count;
  const covariance = new Float64Array(kn * kn);
  for (const rows of all) {
    const centred = rows.map((r, i) => r.map((v) => v - mean[i]!));
    for (let i = 0; i < kn; i++) {
      for (let j = i; j < kn; j++) {
        let s = 0;
        const a = centred[i]!;
        const b = centred[j]!;
        for (let p = 0; p < a.length; p++) s += a[p]! * b[p]!;
        covariance[i * kn + j]! += s;
      }
    }
  }
  for (let i = 0; i < kn; i++) {
    for (let j = i; j < kn; j++) {
      covariance[i * kn + j] = covariance[i * kn + j]! / count;
      covariance[j * kn + i] = covariance[i * kn + j]!;
    }
  }
  const correlation = new Float64Array(kn * kn);
  for (let i = 0; i < kn; i++) {
    for (let j = 0; j < kn; j++) {
      const d = Math.sqrt(covariance[i * kn + i]! * covariance[j * kn + j]!);
      correlation[i * kn + j] = covariance[i * kn + j]! / Math.max(d, 1e-7);
    }
  }
  return { count, mean, covariance, correlation };
}

/** Float64 moments of one batch about `shift`, as a kernel would return them (exactly). */
export function referenceMoments(
  batch: readonly ActivationBatch[],
  shift: Float64Array,
): BatchMoments {
  const rows = stackedRows(batch);
  const kn = rows.length;
  const centred = rows.map((r, i) => r.map((v) => v - shift[i]!));
  const sum = new Float64Array(kn);
  const gram = new Float64Array(kn * kn);
  for (let i = 0; i < kn; i++) {
    for (const v of centred[i]!) sum[i]! += v;
    for (let j = 0; j < kn; j++) {
      let s = 0;
      for (let p = 0; p < centred[i]!.length; p++) s += centred[i]![p]! * centred[j]![p]!;
      gram[i * kn + j] = s;
    }
  }
  return { count: rows[0]!.length, shift, sum, gram };
}

/**
 * K models' activations of one batch, `dims` each, with correlated channels: model k's channel
 * c is a mix of shared latent signals plus noise, scaled and offset per channel.
 */
export function randomBatch(
  random: Random,
  numModels: number,
  dims: readonly number[],
  offset = 0,
): ActivationBatch[] {
  const size = dims.reduce((a, d) => a * d, 1);
  const [n, c] = [dims[0]!, dims[1]!];
  const spatial = size / (n * c);
  const latent = Float64Array.from({ length: n * spatial * 3 }, () => random.normal());
  return Array.from({ length: numModels }, (_, k) => {
    const data = new Float32Array(size);
    for (let ch = 0; ch < c; ch++) {
      const mix = [Math.sin(ch + k), Math.cos(2 * ch - k), 0.3];
      const scale = 0.5 + ((ch * 7 + k * 3) % 5);
      const shift = offset + ((ch * 13 + k) % 7) - 3;
      for (let i = 0; i < n; i++) {
        for (let s = 0; s < spatial; s++) {
          const p = (i * spatial + s) * 3;
          const v =
            mix[0]! * latent[p]! +
            mix[1]! * latent[p + 1]! +
            mix[2]! * latent[p + 2]! +
            0.5 * random.normal();
          data[(i * c + ch) * spatial + s] = shift + scale * v;
        }
      }
    }
    return { dims: [...dims], data };
  });
}

/** Largest |a_i - b_i|. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Largest |C_ij - C'_ij| / sqrt(C_ii C_jj): covariance error in correlation units. */
export function covarianceError(covariance: ArrayLike<number>, reference: Float64Array): number {
  const n = Math.round(Math.sqrt(reference.length));
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const scale = Math.max(Math.sqrt(reference[i * n + i]! * reference[j * n + j]!), 1e-30);
      worst = Math.max(worst, Math.abs(covariance[i * n + j]! - reference[i * n + j]!) / scale);
    }
  }
  return worst;
}
