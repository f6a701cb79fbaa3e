/**
 * @file CCA merge (after Horoi et al., "Harmony in diversity", 2024): align each model's
 * features to model 0's by a dense linear map found by canonical correlation analysis, then
 * average; a generalisation of Permute from permutations to invertible linear maps.
 */
import { fail, ok, type Result } from '../errors.js';
import { multiply, symmetricFunctions, transpose } from '../tensor/symmetric.js';
import type { ChannelMap, SpaceTransform } from './transform.js';

/** The default ridge of the covariances, relative to their mean variance (see {@link ccaTransform}). */
export const DEFAULT_CCA_RIDGE = 0.01;

/**
 * The merge of one space by CCA, from its K-stacked covariance ([Kn, Kn], model 0's features
 * first). For each model k >= 1, with C_00, C_kk its own covariances (each plus `ridge` times
 * its mean variance on the diagonal) and C_0k the cross-covariance:
 *
 *   K = C_00^(-1/2) C_0k C_kk^(-1/2) = U S V^T (the canonical correlations S),
 *   T_k = C_00^(1/2) U V^T C_kk^(-1/2),
 *
 * the map under which model k's features best predict model 0's in canonical coordinates
 * (P_0^T f_0 ~ P_k^T f_k with P_0 = C_00^(-1/2) U, P_k = C_kk^(-1/2) V gives
 * f_0 ~ (P_0^T)^-1 P_k^T f_k = T_k f_k). U V^T, the orthogonal polar factor of K, is
 * K (K^T K)^(-1/2). The merged features are the average (f_0 + sum_k T_k f_k) / K in model 0's
 * coordinates: M_0 = I / K, M_k = T_k / K, U_0 = I, U_k = T_k^-1
 * = C_kk^(1/2) V U^T C_00^(-1/2), so sum_k M_k U_k = I on the directions the merge data span
 * (see the first NOTE). When model k's features are a
 * permutation of model 0's and the covariance has full rank, T_k is exactly that permutation
 * (the ridge too is permuted), so a model merged with a permuted copy of itself is itself; for
 * a general invertible re-mix T_k is its inverse as the ridge goes to 0.
 *
 * NOTE: directions the merge data do not span (a channel constant on them, or fewer
 * observations, images x positions, than channels) have canonical correlation 0, and the map
 * sends them to 0 (polarFactor): exact on the data, and there sum_k M_k U_k = I does not hold.
 *
 * NOTE: the ridge keeps C^(-1/2) bounded on dead or duplicate channels (variance 0): without it
 * such a channel's weights would be multiplied by 1 / sqrt(0). 0.01 of the mean variance
 * leaves the live directions of ResNet-20's spaces nearly unchanged.
 *
 * NOTE: the map is dense, and the non-linearities between layers (ReLU) do not commute with it:
 * like ZipIt!'s averages, the merge is exact only in the linear parts. Per-channel scales
 * (BatchNorm, LayerNorm, PRelu, grouped convolutions) do not commute with it either: the
 * pipeline refuses models that have them (mergeModels); per-channel shifts (biases) mix
 * linearly and are exact.
 */
export function ccaTransform(
  covariance: Float64Array,
  numModels: number,
  width: number,
  ridge = DEFAULT_CCA_RIDGE,
): Result<SpaceTransform> {
  const n = width;
  const total = numModels * n;
  if (covariance.length !== total * total)
    return fail(
      'bad-shape',
      `Expected a covariance of ${total} x ${total} features, got ${covariance.length} entries`,
    );
  if (!(ridge > 0))
    return fail('bad-argument', `Expected the CCA ridge to be positive, got ${ridge}`);
  const block = (k: number, l: number): Float64Array => {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) out[i * n + j] = covariance[(k * n + i) * total + l * n + j]!;
    return out;
  };
  const regularised = (k: number): Float64Array => {
    const c = block(k, k);
    let trace = 0;
    for (let i = 0; i < n; i++) trace += c[i * n + i]!;
    // A space with no variance at all gets a ridge of `ridge` itself, so its roots stay finite.
    const added = ridge * (trace > 0 ? trace / n : 1);
    for (let i = 0; i < n; i++) c[i * n + i]! += added;
    return c;
  };
  const roots = (c: Float64Array): Float64Array[] =>
    symmetricFunctions(c, n, [
      (v) => Math.sqrt(Math.max(v, 0)),
      (v) => 1 / Math.sqrt(Math.max(v, Number.MIN_VALUE)),
    ]);
  const [root0, inverseRoot0] = roots(regularised(0)) as [Float64Array, Float64Array];
  const rows: ChannelMap[] = [scaledIdentity(n, 1 / numModels)];
  const columns: ChannelMap[] = [scaledIdentity(n, 1)];
  for (let k = 1; k < numModels; k++) {
    const [rootK, inverseRootK] = roots(regularised(k)) as [Float64Array, Float64Array];
    const whitened = multiply(multiply(inverseRoot0, block(0, k), n, n, n), inverseRootK, n, n, n);
    const rotation = polarFactor(whitened, n);
    const map = multiply(multiply(root0, rotation, n, n, n), inverseRootK, n, n, n);
    const inverse = multiply(
      multiply(rootK, transpose(rotation, n, n), n, n, n),
      inverseRoot0,
      n,
      n,
      n,
    );
    if (!map.every(Number.isFinite) || !inverse.every(Number.isFinite))
      return fail('bad-statistics', 'The CCA map is not finite: the covariance is not usable');
    rows.push(denseMap(map, n, 1 / numModels));
    // columns[k] holds U_k^T: entry (merged c, source j) is U_k[j, c] = inverse[j, c].
    columns.push(denseMap(transpose(inverse, n, n), n, 1));
  }
  return ok({ mergedWidth: n, rows, columns });
}

/**
 * The polar factor R = A (A^T A)^(-1/2) of a square [n, n] matrix A = U S V^T: U V^T on the
 * directions where A is not (numerically) singular, and 0 on the others. Those are directions
 * with canonical correlation 0 (a channel constant on the data, say): the data say nothing of
 * how they correspond, and sending them to 0 keeps model k's channels there out of the merge
 * (model 0's are halved). Completing R to an orthogonal matrix there (any rotation fits the
 * data equally) would make sum_k M_k U_k = I everywhere, but mix, with either sign, the
 * pre-activations of channels that never fire on the data, which no data can check.
 */
function polarFactor(a: Float64Array, n: number): Float64Array {
  const gram = multiply(transpose(a, n, n), a, n, n, n);
  let largest = 0;
  for (let i = 0; i < n; i++) largest = Math.max(largest, gram[i * n + i]!);
  const floor = 1e-12 * largest;
  return multiply(
    a,
    symmetricFunctions(gram, n, [(v) => (v > floor ? 1 / Math.sqrt(v) : 0)])[0]!,
    n,
    n,
    n,
  );
}

/** A dense [n, n] matrix times `scale` as a channel map (entry (out i, in j) = scale * m[i, j]). */
function denseMap(matrix: Float64Array, n: number, scale: number): ChannelMap {
  const out = new Int32Array(n * n);
  const input = new Int32Array(n * n);
  const weight = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      out[i * n + j] = i;
      input[i * n + j] = j;
      weight[i * n + j] = scale * matrix[i * n + j]!;
    }
  return { outWidth: n, inWidth: n, out, in: input, weight };
}

/** scale * I as a channel map. */
function scaledIdentity(n: number, scale: number): ChannelMap {
  const index = Int32Array.from({ length: n }, (_, i) => i);
  return {
    outWidth: n,
    inWidth: n,
    out: index,
    in: index,
    weight: new Float64Array(n).fill(scale),
  };
}
