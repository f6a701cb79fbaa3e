/**
 * @file The class-aware head against the paper's averaged head (issue 13's first lever): every
 * full merge of each pair, both rules, joint and task accuracy by the reference's scoring.
 *
 *   node --import tsx bench/heads.ts [--samples 5000] [--zipit 0.3/0.125,0.7/1] [--rules average] <pair> [<pair> ...]
 *
 * A pair is `dir` (a.onnx and b.onnx, tasks from pair.json or the models' metadata) or
 * `dir:a-bn.onnx,b-bn.onnx` to pick the files. Preprocessing: pair.json, else the models'
 * metadata, else Fashion-MNIST's 0.286 / 0.353. Prints a Markdown table, one JSON line per pair
 * on stderr.
 */
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { takeBalanced } from '../src/data/dataset.js';
import { compareMethods, type MethodSpec } from '../src/experiment/compare.js';
import { HEAD_RULES, type HeadRule } from '../src/merge/class-head.js';
import { loadPair } from './pairs.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    samples: { type: 'string', default: '5000' },
    zipit: { type: 'string', default: '0.3/0.125,0.7/1' },
    threads: { type: 'string', default: '2' },
    rules: { type: 'string', default: HEAD_RULES.join(',') },
  },
});

const check = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  if (!r.ok) throw new Error(r.message);
  return r.value;
};

const methods: MethodSpec[] = [
  { name: 'W.Avg', method: 'wavg', alpha: 0, beta: 0 },
  { name: 'Permute', method: 'permute', alpha: 0, beta: 0 },
  ...values.zipit.split(',').map((ab): MethodSpec => {
    const [alpha, beta] = ab.split('/').map(Number) as [number, number];
    return { name: `ZipIt! (${alpha}, ${beta})`, method: 'zipit', alpha, beta };
  }),
];

const train = check(loadFashionMnist('train'));
const test = check(loadFashionMnist('test'));
const pct = (x: number): string => (100 * x).toFixed(1);

console.log(
  `| pair | method | average: joint | A | B | class-aware: joint | A | B | joint difference |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
for (const spec of positionals) {
  const { dir, names, models, tasks, normalization } = loadPair(spec);
  const { mean, std } = normalization;
  const mergeData = check(
    takeBalanced(train, tasks.flat(), Math.min(Number(values.samples), train.count), 0),
  );
  const byRule = new Map<string, Map<string, { joint: number; tasks: readonly number[] }>>();
  for (const head of values.rules.split(',') as HeadRule[]) {
    const result = check(
      await compareMethods({
        models,
        labels: names,
        tasks,
        mergeData,
        testData: test,
        normalization: { mean, std },
        methods,
        threads: Number(values.threads),
        head,
      }),
    );
    byRule.set(head, new Map(result.rows.map((r) => [r.method, r])));
  }
  const rows = methods.map((m) => {
    // With one rule, both column groups show it.
    const avg = (byRule.get('average') ?? byRule.get('class-aware')!).get(m.name)!;
    const cls = (byRule.get('class-aware') ?? byRule.get('average')!).get(m.name)!;
    console.log(
      `| ${dir} | ${m.name} | ${pct(avg.joint)} | ${pct(avg.tasks[0]!)} | ${pct(avg.tasks[1]!)} | ${pct(cls.joint)} | ${pct(cls.tasks[0]!)} | ${pct(cls.tasks[1]!)} | ${(100 * (cls.joint - avg.joint)).toFixed(1)} |`,
    );
    return { method: m.name, average: avg, classAware: cls };
  });
  console.error(JSON.stringify({ pair: dir, tasks, rows }));
}
