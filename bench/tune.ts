/**
 * @file Label-free alpha/beta (tuneMerge) against the labelled choice, pair by pair: the
 * labelled grid (joint test accuracy of the plain merge at every grid point, reference scoring),
 * every agreement rule's label-free choice (held out and in-sample) and its joint accuracy, the
 * fixed (0.7, 1.0) the x1 experiment chose, and the time of a tuned merge against a plain one.
 *
 *   node --import tsx bench/tune.ts [--samples 5000] [--holdout 0.2] [--reset-images 1000]
 *     [--head average|class-aware] [--defaults] [--threads 2] [--out f.json] [--labelled-from f.json] [<pair> ...]
 *
 * A pair is `dir` (a.onnx and b.onnx) or `dir:a-bn.onnx,b-bn.onnx`; tasks from pair.json, else
 * the models' trained classes, else each model's `classes` in a.json / b.json beside it; preprocessing from pair.json, else the models' metadata, else
 * Fashion-MNIST's 0.286 / 0.353. Without pairs: runs/exp-r20x1-e6/pair-0..3, models/resnet20-pair,
 * and runs/torch-pairs/pair-N (BN exports) that have both models. Prints a Markdown summary on
 * stderr and the whole measurement as JSON on stdout (and into --out). `--labelled-from` takes
 * the labelled grid (and in-sample scores) of the same pairs from an earlier run's JSON, to
 * compare tuner settings without redoing the 16 labelled merges per pair.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { takeBalanced } from '../src/data/dataset.js';
import { modelScores } from '../src/eval/evaluate.js';
import { scoreTasks, type ScoreSource } from '../src/eval/metrics.js';
import {
  AGREEMENT_RULES,
  agreementScores,
  tuneMerge,
  type AgreementRule,
} from '../src/experiment/tune.js';
import { HEAD_RULES, type HeadRule } from '../src/merge/class-head.js';
import { RECOMMENDED_MERGE } from '../src/merge/recommended.js';
import { collectMergeStatistics, mergeModels } from '../src/merge/pipeline.js';
import type { Model } from '../src/onnx/model.js';
import { loadPair, torchPairs } from './pairs.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    samples: { type: 'string', default: '5000' },
    holdout: { type: 'string', default: '0.2' },
    'reset-images': { type: 'string' },
    'labelled-from': { type: 'string' },
    head: { type: 'string' },
    defaults: { type: 'boolean', default: false },
    threads: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});

const check = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const now = (): number => performance.now() / 1000;
const pct = (x: number): string => (100 * x).toFixed(1);
const threads = Number(values.threads);
const samples = Number(values.samples);
const holdout = Number(values.holdout);
// The classifier rule of every merge (default: mergeModels' own).
const head = values.head as HeadRule | undefined;
if (head !== undefined && !HEAD_RULES.includes(head)) throw new Error(`--head ${head}?`);
// --defaults: every merge with zipit's other defaults too (sources reset, standardised logits;
// head auto unless --head), so the tuner is judged in the pipeline users get.
const headOption = {
  ...(values.defaults
    ? { resetSources: true, logits: RECOMMENDED_MERGE.logits, head: RECOMMENDED_MERGE.head }
    : {}),
  ...(head !== undefined ? { head } : {}),
};
const resetImages =
  values['reset-images'] !== undefined ? Number(values['reset-images']) : undefined;
const earlier =
  values['labelled-from'] !== undefined
    ? (
        JSON.parse(readFileSync(values['labelled-from'], 'utf8')) as {
          samples: number;
          results: { pair: string; grid: GridRow[] }[];
        }
      ).results
    : undefined;
const FIXED = { alpha: 0.7, beta: 1 };
const DEFAULT = { alpha: 0.3, beta: 0.125 };

function defaultPairs(): string[] {
  const pairs = [0, 1, 2, 3].map((p) => `runs/exp-r20x1-e6/pair-${p}`);
  pairs.push('models/resnet20-pair', ...torchPairs());
  return pairs.filter((spec) => existsSync(spec.split(':')[0]!));
}

/** Spearman's rank correlation (average ranks on ties). */
function spearman(x: readonly number[], y: readonly number[]): number {
  const ranks = (v: readonly number[]): number[] => {
    const order = v.map((value, i) => ({ value, i })).sort((a, b) => a.value - b.value);
    const r = new Array<number>(v.length);
    for (let s = 0; s < order.length;) {
      let e = s;
      while (e + 1 < order.length && order[e + 1]!.value === order[s]!.value) e++;
      for (let k = s; k <= e; k++) r[order[k]!.i] = (s + e) / 2;
      s = e + 1;
    }
    return r;
  };
  const rx = ranks(x);
  const ry = ranks(y);
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(rx);
  const my = mean(ry);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < rx.length; i++) {
    sxy += (rx[i]! - mx) * (ry[i]! - my);
    sxx += (rx[i]! - mx) ** 2;
    syy += (ry[i]! - my) ** 2;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : 0;
}

interface GridRow {
  alpha: number;
  beta: number;
  joint: number;
  inSample: Record<AgreementRule, number>;
  heldOut: Record<AgreementRule, number>;
}

// The merges depend on the code: record which (and whether src/ had uncommitted changes).
const git = (...args: string[]): string =>
  execFileSync('git', args, { cwd: join(import.meta.dirname, '..'), encoding: 'utf8' }).trim();
const code = { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', 'src') };
const train = check(loadFashionMnist('train'));
const test = check(loadFashionMnist('test'));
const results: object[] = [];
const summary: string[] = [
  '| pair | labelled best (a, b): joint | fixed (0.7, 1) | default (0.3, 0.125) | ' +
    AGREEMENT_RULES.map((r) => `${r}: choice, joint, rho`).join(' | ') +
    ' | plain s | tuned s |',
  `| --- | --- | --- | --- | ${AGREEMENT_RULES.map(() => '---').join(' | ')} | --- | --- |`,
];
for (const spec of positionals.length > 0 ? positionals : defaultPairs()) {
  const { dir, names, models, tasks, normalization } = loadPair(spec);
  const data = check(takeBalanced(train, tasks.flat(), Math.min(samples, train.count), 0));
  const labels = names.map((n) => join(dir, n));
  const score = async (model: Model, on: typeof data): Promise<ScoreSource[]> =>
    check(await modelScores({ model, label: dir, ...normalization }, on, { threads }));
  process.stderr.write(`${spec}: tasks ${tasks.map((t) => t.join(',')).join('/')}\n`);

  // A plain merge (what `zipit merge` does at the defaults), for the time a tuned one costs.
  let t = now();
  check(
    await mergeModels(models, labels, data, normalization, {
      method: 'zipit',
      match: DEFAULT,
      trainedClasses: tasks,
      ...headOption,
      threads,
    }),
  );
  const plainSeconds = now() - t;
  t = now();
  const tuned = check(
    await tuneMerge(models, labels, data, normalization, tasks, {
      holdout,
      ...(resetImages !== undefined ? { resetImages } : {}),
      merge: { threads, ...headOption },
    }),
  );
  const tunedSeconds = now() - t;

  // The labelled grid: the plain merge on all the merge data at every point, scored on the test
  // set, and its in-sample agreement (scored on the merge data the merge was fitted to).
  const grid: GridRow[] = [];
  const usedHead = tuned.merge.report.head;
  const before = earlier?.find((r) => r.pair === spec)?.grid;
  if (earlier !== undefined && before === undefined)
    throw new Error(`${spec} is not in ${values['labelled-from']}`);
  for (const point of before !== undefined ? tuned.tuning.points : []) {
    const row = before!.find((g) => g.alpha === point.alpha && g.beta === point.beta);
    if (row === undefined) throw new Error(`${spec}: no (${point.alpha}, ${point.beta}) earlier`);
    grid.push({ ...row, heldOut: point.agreement });
  }
  const statistics =
    before === undefined
      ? check(
          await collectMergeStatistics(models, labels, data, normalization, {
            method: 'zipit',
            threads,
            // The grid's merges read these statistics instead of resetting the sources themselves.
            ...(values.defaults ? { resetSources: true } : {}),
          }),
        )
      : undefined;
  const sourcesOnData =
    before === undefined
      ? await Promise.all(models.map(async (m) => (await score(m, data))[0]!))
      : [];
  for (const point of before === undefined ? tuned.tuning.points : []) {
    const merged = check(
      await mergeModels(models, labels, data, normalization, {
        method: 'zipit',
        match: { alpha: point.alpha, beta: point.beta },
        statistics: statistics!,
        trainedClasses: tasks,
        ...headOption,
        threads,
      }),
    );
    const joint = scoreTasks(await score(merged.model, test), test.labels, tasks).joint;
    const inSample = check(agreementScores(sourcesOnData, await score(merged.model, data), tasks));
    grid.push({ alpha: point.alpha, beta: point.beta, joint, inSample, heldOut: point.agreement });
    process.stderr.write(
      `  (${point.alpha}, ${point.beta}) joint ${pct(joint)}  held-out ${AGREEMENT_RULES.map((r) => `${r} ${pct(point.agreement[r])}`).join(' ')}  in-sample ${AGREEMENT_RULES.map((r) => `${r} ${pct(inSample[r])}`).join(' ')}\n`,
    );
  }
  const at = (p: { alpha: number; beta: number }): GridRow | undefined =>
    grid.find((g) => g.alpha === p.alpha && g.beta === p.beta);
  const best = grid.reduce((a, b) => (b.joint > a.joint ? b : a));
  const choices = Object.fromEntries(
    (['heldOut', 'inSample'] as const).map((mode) => [
      mode,
      Object.fromEntries(
        AGREEMENT_RULES.map((rule) => {
          const chosen = grid.reduce((a, b) => (b[mode][rule] > a[mode][rule] ? b : a));
          return [
            rule,
            {
              alpha: chosen.alpha,
              beta: chosen.beta,
              joint: chosen.joint,
              regret: best.joint - chosen.joint,
              spearman: spearman(
                grid.map((g) => g[mode][rule]),
                grid.map((g) => g.joint),
              ),
            },
          ];
        }),
      ),
    ]),
  ) as Record<
    'heldOut' | 'inSample',
    Record<
      AgreementRule,
      { alpha: number; beta: number; joint: number; regret: number; spearman: number }
    >
  >;
  const result = {
    pair: spec,
    tasks,
    head: usedHead,
    samples: data.count,
    holdout: {
      fitted: tuned.tuning.fitted,
      scored: tuned.tuning.scored,
      reset: tuned.tuning.reset,
    },
    grid,
    labelledBest: { alpha: best.alpha, beta: best.beta, joint: best.joint },
    fixed: { ...FIXED, joint: at(FIXED)?.joint },
    default: { ...DEFAULT, joint: at(DEFAULT)?.joint },
    tuneMergeChoice: tuned.tuning.chosen,
    choices,
    seconds: { plainMerge: plainSeconds, tunedMerge: tunedSeconds, tuning: tuned.tuning.seconds },
  };
  results.push(result);
  process.stderr.write(`${JSON.stringify(result)}\n`);
  summary.push(
    `| ${dir} | (${best.alpha}, ${best.beta}): ${pct(best.joint)} | ${pct(at(FIXED)?.joint ?? NaN)} | ${pct(at(DEFAULT)?.joint ?? NaN)} | ` +
      AGREEMENT_RULES.map((rule) => {
        const c = choices.heldOut[rule];
        return `(${c.alpha}, ${c.beta}) ${pct(c.joint)} ${c.spearman.toFixed(2)}`;
      }).join(' | ') +
      ` | ${plainSeconds.toFixed(1)} | ${tunedSeconds.toFixed(1)} |`,
  );
}
process.stderr.write(`\n${summary.join('\n')}\n`);
const json = JSON.stringify({ code, samples, holdout, resetImages, threads, results }, null, 2);
if (values.out !== undefined) writeFileSync(values.out, `${json}\n`);
console.log(json);
