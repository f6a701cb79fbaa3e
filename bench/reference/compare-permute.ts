/**
 * @file Our Permute matchings and correlations beside the reference's, space by space, on one
 * pair: which spaces' one-to-one matchings differ, by how much the two sides' correlations
 * differ, and each assignment's objective under both sides' correlations (is it a near-tie?).
 *
 *   ZIPIT_REFERENCE=<checkout> npm run --silent bench:reference -- <pair> --only permute --samples N --keep ...
 *   ZIPIT_REFERENCE=<checkout> /usr/bin/python3 bench/reference/run_reference.py --input <kept dir> --methods permute --dump ref.json
 *   node --import tsx bench/reference/compare-permute.ts <pair> N ref.json
 *
 * Our side: the sources' BN reset and the Permute merge on the same N merge images (seed 0), as
 * the harness runs it. A reference node is paired with our space whose correlation matrix is
 * closest (same size).
 */
import { readFileSync } from 'node:fs';
import { takeBalanced } from '../../src/data/dataset.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { matchers } from '../../src/match/index.js';
import { mergeModels } from '../../src/merge/pipeline.js';
import { resetSources } from '../../src/merge/source-reset.js';
import { loadPair } from '../pairs.js';

const [pairSpec, samplesText, dumpPath] = process.argv.slice(2);
if (pairSpec === undefined || samplesText === undefined || dumpPath === undefined) {
  console.error(
    'Usage: node --import tsx bench/reference/compare-permute.ts <pair> <samples> <ref dump.json>',
  );
  process.exit(2);
}
const check = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const pair = loadPair(pairSpec);
const train = check(loadFashionMnist('train'));
const data = check(takeBalanced(train, pair.tasks.flat(), Number(samplesText), 0));
const sources = check(
  await resetSources(pair.models, pair.names, data, pair.normalization, { threads: 2 }),
);
const merged = check(
  await mergeModels(sources, pair.names, data, pair.normalization, {
    method: 'permute',
    resetSources: 'already',
    threads: 2,
  }),
);
const reference = (
  JSON.parse(readFileSync(dumpPath, 'utf8')) as Record<
    string,
    Record<string, { b: number[][]; correlation: number[][] }>
  >
)['Permute'];
if (reference === undefined) throw new Error(`${dumpPath} has no Permute matchings`);
const ours = [...merged.correlations.entries()];
for (const [node, ref] of Object.entries(reference)) {
  const total = ref.correlation.length;
  const n = total / 2;
  let best: { id: number; diff: number; correlation: Float64Array } | undefined;
  for (const [id, correlation] of ours) {
    if (correlation.length !== total * total) continue;
    let diff = 0;
    for (let i = 0; i < total; i++)
      for (let j = 0; j < total; j++)
        diff = Math.max(diff, Math.abs(correlation[i * total + j]! - ref.correlation[i]![j]!));
    if (best === undefined || diff < best.diff) best = { id, diff, correlation };
  }
  if (best === undefined)
    throw new Error(`No space of ours has ${n} channels (reference node ${node})`);
  const matching = check(matchers.permute(best.correlation, 2, n, { alpha: 0, beta: 0 }));
  const oursB = matching.groups.map((g) => g[1]! - n);
  const refB = ref.b.map((covered) => covered[0]!);
  const differ = oursB.filter((j, i) => j !== refB[i]).length;
  const objective = (assignment: number[], at: (i: number, j: number) => number): string =>
    assignment.reduce((sum, j, i) => sum + at(i, n + j), 0).toFixed(6);
  const underOurs = (i: number, j: number): number => best.correlation[i * total + j]!;
  const underRef = (i: number, j: number): number => ref.correlation[i]![j]!;
  console.log(
    `reference node ${node} ~ our space ${best.id}: max |correlation difference| ${best.diff.toExponential(2)}; ${differ}/${n} assignments differ; objective (ours / reference's assignment) under our correlations ${objective(oursB, underOurs)} / ${objective(refB, underOurs)}, under the reference's ${objective(oursB, underRef)} / ${objective(refB, underRef)}`,
  );
}
