/**
 * @file Our side of the reference harness: the same rows as run_reference.py on the folder
 * bench/reference.ts prepared, through the public API (mergeModels, modelScores, scoreTasks),
 * on the same merge images, batch size and preprocessing. Prints one JSON object.
 *
 * Usage: node --import tsx bench/reference/ours.ts --input DIR --methods models,wavg,...
 *   [--alpha 0.3 --beta 0.125] [--base-reset]
 *
 * --base-reset does what the reference's scripts do: the sources' BatchNorm statistics are reset
 * on the merge images before they are scored (Model rows, Ensemble) and before each merge.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { createSession } from '../../src/runtime/session.js';
import {
  batches,
  mergeModels,
  modelScores,
  readModelFile,
  resetSources,
  scoreTasks,
  type MatchMethod,
  type Model,
  type ScoreSource,
} from '../../src/index.js';
import { peakMiB, readDataset, readManifest, type SideOutput, type SideRow } from './exchange.js';

const { values } = parseArgs({
  options: {
    input: { type: 'string' },
    methods: { type: 'string', default: 'models,wavg,permute,zipit,zipit-13,zipit-7' },
    alpha: { type: 'string', default: '0.3' },
    beta: { type: 'string', default: '0.125' },
    'base-reset': { type: 'boolean', default: false },
    grid: { type: 'string', default: '' },
  },
});
if (values.input === undefined) {
  console.error('Expected --input <folder written by bench/reference.ts>');
  process.exit(1);
}
const dir = values.input;
const manifest = readManifest(dir);
const alpha = Number(values.alpha);
const beta = Number(values.beta);
const mergeData = readDataset(dir, manifest.merge, manifest.numClasses);
const testData = readDataset(dir, manifest.test, manifest.numClasses);
const normalization = { mean: manifest.mean, std: manifest.std };
const threads = manifest.threads;

function orDie<T>(result: { ok: true; value: T } | { ok: false; message: string }): T {
  if (!result.ok) {
    console.error(result.message);
    process.exit(1);
  }
  return result.value;
}

const files: Model[] = manifest.models.map((m) => orDie(readModelFile(m.path)));
const labels = manifest.models.map((m) => m.path);
const baseReset = values['base-reset'];
// Reset once: the merges below then start from the same reset sources as the scores.
const resetStarted = performance.now();
const models = baseReset
  ? orDie(
      await resetSources(files, labels, mergeData, normalization, {
        batchSize: manifest.batchSize,
        threads,
      }),
    )
  : files;
const baseResetSeconds = (performance.now() - resetStarted) / 1000;

/**
 * The floor a merge is measured against: one plain onnxruntime pass of model A over the merge
 * images at the merge's batch size and threads (best of 3). The paper's merge needs K + 1 such
 * passes (the statistics of K models, the merged model's BN reset).
 */
async function plainPassSeconds(): Promise<number> {
  const session = orDie(await createSession(files[0]!, { threads }));
  const pass = orDie(batches(mergeData, { batchSize: manifest.batchSize, normalization }));
  const input = session.inputNames[0]!;
  const dims = [mergeData.channels, mergeData.height, mergeData.width];
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const started = performance.now();
    for (const b of pass)
      await session.run({ [input]: { dtype: 'float32', dims: [b.size, ...dims], data: b.input } });
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  await session.release();
  return best;
}
const plainPass = await plainPassSeconds();

async function scores(model: Model, label: string): Promise<ScoreSource[]> {
  return orDie(
    await modelScores({ model, label, ...normalization }, testData, { threads, batchSize: 500 }),
  );
}

function row(method: string, sources: ScoreSource[]): SideRow {
  const accuracy = scoreTasks(sources, testData.labels, manifest.tasks);
  return { method, joint: accuracy.joint, tasks: accuracy.tasks, avg: accuracy.avg };
}

const MERGES: Record<string, { name: string; method: MatchMethod; stop?: string }> = {
  wavg: { name: 'W.Avg', method: 'wavg' },
  permute: { name: 'Permute', method: 'permute' },
  zipit: { name: 'ZipIt!20/20', method: 'zipit' },
  'zipit-13': { name: 'ZipIt!13/20', method: 'zipit', stop: 'zipit-13' },
  'zipit-7': { name: 'ZipIt!7/20', method: 'zipit', stop: 'zipit-7' },
};

// The merges depend on the code this process loaded: which commit, and src/'s uncommitted changes.
const git = (...args: string[]): string =>
  spawnSync('git', args, { encoding: 'utf8', cwd: import.meta.dirname }).stdout.trim();
const code = {
  commit: git('rev-parse', '--short', 'HEAD'),
  dirty: git('status', '--porcelain', '../../src'),
};

const rows: SideRow[] = [];
const seconds: Record<string, object> = {};
// A grid runs the full zip once per alpha/beta pair, rows named by the pair (as the reference's).
const grid = values.grid
  .split(',')
  .filter((ab) => ab !== '')
  .map((ab) => ab.split('/').map(Number) as [number, number]);
const runs: { method: string; ab?: [number, number] }[] = [
  ...values.methods
    .split(',')
    .filter((m) => !(grid.length > 0 && m === 'zipit'))
    .map((method) => ({ method })),
  ...grid.map((ab) => ({ method: 'zipit', ab })),
];
for (const { method, ab } of runs) {
  console.error(`ours: ${method}${ab ? ` ${ab.join('/')}` : ''}`);
  if (method === 'models') {
    const sources: ScoreSource[][] = [];
    for (const [k, model] of models.entries()) {
      sources.push(await scores(model, labels[k]!));
      rows.push(row(`Model ${String.fromCharCode(65 + k)}`, sources[k]!));
    }
    rows.push(row('Ensemble', sources.flat()));
    continue;
  }
  const spec = MERGES[method];
  if (spec === undefined) {
    console.error(
      `Expected methods among models,${Object.keys(MERGES).join(',')}, got '${method}'`,
    );
    process.exit(1);
  }
  const stopAt = spec.stop === undefined ? undefined : manifest.stopPoints[spec.stop];
  const started = performance.now();
  const merged = orDie(
    await mergeModels(models, labels, mergeData, normalization, {
      method: spec.method,
      match: ab ? { alpha: ab[0], beta: ab[1] } : { alpha, beta },
      batchSize: manifest.batchSize,
      threads,
      ...(stopAt !== undefined ? { stopAt } : {}),
    }),
  );
  const mergeSeconds = (performance.now() - started) / 1000;
  const name = ab ? `${spec.name} ${ab.join('/')}` : spec.name;
  seconds[name] = merged.report.seconds;
  rows.push({
    ...row(name, await scores(merged.model, name)),
    mergeSeconds,
    transformSeconds: merged.report.seconds.matching,
  });
}
const output: SideOutput = {
  side: 'ours',
  alpha,
  beta,
  code,
  ...(baseReset ? { baseResetSeconds } : {}),
  plainPassSeconds: plainPass,
  rows,
  phaseSeconds: seconds,
  peakMiB: peakMiB(),
};
console.log(JSON.stringify(output));
