/**
 * @file Issue 13's ablation: each lever alone and together, on every pair, joint accuracy by the
 * reference's scoring rules, with the mean over the pairs.
 *
 *   node --import tsx bench/ablation.ts [--samples 5000] [--threads 2] [--out results.json]
 *     [--config "label: key=value ..."]... [<pair> ...]
 *
 * A config is a label and the options that differ from the paper's ZipIt! (alpha 0.3, beta
 * 0.125, averaged head, sources kept, 5,000 merge images, BN reset after merging):
 *   method=zipit|permute|wavg|weights|ensemble  alpha=  beta=  head=average|class-aware
 *   reset=0|1 (the sources' BN reset)  samples=  repair=0|1  stop=<stop point>
 *   logits=raw|standardize  wsim=<share of weight similarity, dual-space matching>
 *   augment=flip|crop (the merge images plus one mirrored, or one randomly shifted copy of each)
 *   ridge=<CCA merge's relative ridge>
 * Without --config, the levers of docs/RESULTS.md's ablation table. Pairs as bench/pairs.ts
 * (default: the PyTorch pairs in runs/torch-pairs). Prints a Markdown table: one column per
 * pair, then the mean of the pairs and of the pairs after the first (pair 0 is the tuning pair
 * of the PyTorch pairs); one JSON line per result on stderr, all of them in --out.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { takeBalanced, type Dataset } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { modelScores } from '../src/eval/evaluate.js';
import { scoreTasks, type ScoreSource } from '../src/eval/metrics.js';
import type { HeadRule } from '../src/merge/class-head.js';
import type { LogitRule } from '../src/merge/logits.js';
import { mergeModels } from '../src/merge/pipeline.js';
import { resetSources } from '../src/merge/source-reset.js';
import type { MatchMethod } from '../src/match/index.js';
import type { Model } from '../src/onnx/model.js';
import { loadPair, torchPairs, type Pair } from './pairs.js';

const DEFAULT_CONFIGS = [
  'ZipIt! paper (0.3, 0.125):',
  '+ alpha/beta (0.5, 1) only: alpha=0.5 beta=1',
  '+ sources reset only: reset=1',
  '+ class-aware head only: head=auto',
  '+ standardised logits only: logits=standardize',
  'ZipIt! zipit defaults (all four): alpha=0.5 beta=1 reset=1 head=auto logits=standardize',
  'defaults without the reset: alpha=0.5 beta=1 head=auto logits=standardize',
  'defaults without class-aware: alpha=0.5 beta=1 reset=1 logits=standardize',
  'defaults without standardising: alpha=0.5 beta=1 reset=1 head=auto',
  'Permute paper: method=permute',
  'Permute with the defaults: method=permute reset=1 head=auto logits=standardize',
  'Weights paper: method=weights',
  'Weights with the defaults: method=weights reset=1 head=auto logits=standardize',
  'Ensemble: method=ensemble',
  'Ensemble, sources reset: method=ensemble reset=1',
];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    samples: { type: 'string', default: '5000' },
    threads: { type: 'string', default: '2' },
    config: { type: 'string', multiple: true },
    out: { type: 'string' },
  },
});

interface Config {
  readonly label: string;
  readonly method: MatchMethod | 'ensemble';
  readonly alpha: number;
  readonly beta: number;
  readonly head: HeadRule;
  readonly reset: boolean;
  readonly samples: number;
  readonly repair: boolean;
  readonly stop?: string;
  readonly logits: LogitRule;
  readonly weightSimilarity: number;
  readonly augment: 'none' | 'flip' | 'crop';
  readonly ridge?: number;
}

function parseConfig(text: string): Config {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new Error(`Expected 'label: key=value ...', got '${text}'`);
  const settings = new Map(
    text
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((kv) => kv !== '')
      .map((kv) => kv.split('=') as [string, string]),
  );
  const known = [
    'method',
    'alpha',
    'beta',
    'head',
    'reset',
    'samples',
    'repair',
    'stop',
    'logits',
    'wsim',
    'augment',
    'ridge',
  ];
  for (const key of settings.keys())
    if (!known.includes(key)) throw new Error(`Unknown key '${key}' in '${text}'`);
  const stop = settings.get('stop');
  return {
    logits: (settings.get('logits') ?? 'raw') as LogitRule,
    label: text.slice(0, colon).trim(),
    method: (settings.get('method') ?? 'zipit') as Config['method'],
    alpha: Number(settings.get('alpha') ?? 0.3),
    beta: Number(settings.get('beta') ?? 0.125),
    head: (settings.get('head') ?? 'average') as HeadRule,
    reset: settings.get('reset') === '1',
    samples: Number(settings.get('samples') ?? values.samples),
    repair: settings.get('repair') !== '0',
    weightSimilarity: Number(settings.get('wsim') ?? 0),
    augment: (settings.get('augment') ?? 'none') as Config['augment'],
    ...(settings.has('ridge') ? { ridge: Number(settings.get('ridge')) } : {}),
    ...(stop !== undefined ? { stop } : {}),
  };
}

const check = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};

const configs = (values.config ?? DEFAULT_CONFIGS).map(parseConfig);
const pairs = (positionals.length > 0 ? positionals : torchPairs()).map(loadPair);
if (pairs.length === 0) throw new Error('No pairs: name them, or train runs/torch-pairs first');
const train = check(loadFashionMnist('train'));
const test = check(loadFashionMnist('test'));
const threads = Number(values.threads);

/** Per pair, memoised: merge data by size, the sources by reset, their test scores. */
function memo<T>(compute: (key: string) => Promise<T>): (key: string) => Promise<T> {
  const cache = new Map<string, Promise<T>>();
  return (key) => {
    if (!cache.has(key)) cache.set(key, compute(key));
    return cache.get(key)!;
  };
}

interface Measured {
  readonly config: string;
  readonly pair: string;
  readonly joint: number;
  readonly tasks: readonly number[];
  readonly seconds: number;
}

const results: Measured[] = [];
for (const pair of pairs) {
  const score = async (model: Model, label: string): Promise<ScoreSource[]> =>
    check(await modelScores({ model, label, ...pair.normalization }, test, { threads }));
  const mergeData = memo(async (key): Promise<Dataset> => {
    const [samples, augment] = key.split('+') as [string, Config['augment'] | undefined];
    const drawn = check(
      takeBalanced(train, pair.tasks.flat(), Math.min(Number(samples), train.count), 0),
    );
    return augment === undefined || augment === 'none' ? drawn : augmented(drawn, augment);
  });
  const sources = memo(async (key): Promise<Model[]> => {
    const [samples, reset] = key.split('/') as [string, string];
    if (reset === 'kept') return pair.models;
    return check(
      await resetSources(pair.models, pair.names, await mergeData(samples), pair.normalization, {
        threads,
      }),
    );
  });
  const sourceScores = memo(async (key): Promise<ScoreSource[][]> => {
    const models = await sources(key);
    const scores: ScoreSource[][] = [];
    for (const [k, m] of models.entries()) scores.push(await score(m, pair.names[k]!));
    return scores;
  });
  for (const config of configs) {
    const data = `${config.samples}+${config.augment}`;
    const key = `${data}/${config.reset ? 'reset' : 'kept'}`;
    const started = performance.now();
    let scores: ScoreSource[];
    if (config.method === 'ensemble') {
      scores = (await sourceScores(key)).flat();
    } else {
      const merged = check(
        await mergeModels(
          await sources(key),
          pair.names,
          await mergeData(data),
          pair.normalization,
          {
            method: config.method,
            match: { alpha: config.alpha, beta: config.beta },
            head: config.head,
            trainedClasses: pair.tasks,
            repair: config.repair,
            logits: config.logits,
            weightSimilarity: config.weightSimilarity,
            ...(config.ridge !== undefined ? { ccaRidge: config.ridge } : {}),
            threads,
            ...(config.stop !== undefined ? { stopAt: config.stop } : {}),
          },
        ),
      );
      scores = await score(merged.model, config.label);
    }
    const accuracy = scoreTasks(scores, test.labels, pair.tasks);
    const measured: Measured = {
      config: config.label,
      pair: pair.spec,
      joint: accuracy.joint,
      tasks: accuracy.tasks,
      seconds: (performance.now() - started) / 1000,
    };
    results.push(measured);
    console.error(JSON.stringify(measured));
  }
}

if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(results, null, 2)}\n`);
console.log(markdown(results, pairs, configs));

/**
 * The images followed by one altered copy of each: mirrored left to right ('flip'), or shifted
 * by up to 2 pixels in each direction with black filling the border ('crop': the training
 * augmentation of a random 28x28 crop of the image padded by 2), seeded.
 */
function augmented(ds: Dataset, kind: 'flip' | 'crop'): Dataset {
  const { channels, height, width, count } = ds;
  const size = channels * height * width;
  const images = new Uint8Array(2 * count * size);
  images.set(ds.images);
  let state = 12345;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  for (let i = 0; i < count; i++) {
    const dy = kind === 'crop' ? Math.floor(next() * 5) - 2 : 0;
    const dx = kind === 'crop' ? Math.floor(next() * 5) - 2 : 0;
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const sy = y + dy;
          const sx = kind === 'flip' ? width - 1 - x : x + dx;
          const inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
          images[(count + i) * size + (c * height + y) * width + x] = inside
            ? ds.images[i * size + (c * height + sy) * width + sx]!
            : 0;
        }
  }
  const labels = new Uint8Array(2 * count);
  labels.set(ds.labels);
  labels.set(ds.labels, count);
  return { ...ds, images, labels, count: 2 * count };
}

/** One row per config: joint per pair, mean over all pairs, mean over the pairs after the first. */
function markdown(
  rows: readonly Measured[],
  on: readonly Pair[],
  with_: readonly Config[],
): string {
  const pct = (x: number): string => (100 * x).toFixed(1);
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const lines = [
    `| config | ${on.map((p) => p.dir).join(' | ')} | mean | mean without ${on[0]!.dir} |`,
    `| --- | ${on.map(() => '---').join(' | ')} | --- | --- |`,
  ];
  for (const config of with_) {
    const joints = on.map(
      (p) => rows.find((r) => r.config === config.label && r.pair === p.spec)!.joint,
    );
    const heldOut = joints.slice(1);
    lines.push(
      `| ${config.label} | ${joints.map(pct).join(' | ')} | ${pct(mean(joints))} | ${heldOut.length > 0 ? pct(mean(heldOut)) : '-'} |`,
    );
  }
  return lines.join('\n');
}
