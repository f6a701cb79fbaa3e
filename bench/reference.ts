/**
 * @file `npm run bench:reference -- <pair dir>`: the official ZipIt! implementation
 * ($ZIPIT_REFERENCE, run by bench/reference/run_reference.py) and ours on the same ONNX pair,
 * the same merge images, batch size and preprocessing, in one side-by-side table: each model,
 * the Ensemble, W.Avg, Permute, ZipIt! 20/20, 13/20 and 7/20; joint and per-task accuracy of
 * both sides and their difference; merge seconds and whole-process peak memory of each side.
 *
 * Each method runs in its own child process on each side (python3 for the reference, node for
 * ours), one after the other, so a row's peak memory is that of a process that did only that
 * merge and its scoring. `--single-process` runs each side's rows in one process instead.
 *
 * Usage:
 *   ZIPIT_REFERENCE=/path/to/ZipIt npm run bench:reference -- models/resnet20-pair \
 *     [--tasks 1,3,6,7,8/0,2,4,5,9] [--alpha 0.3 --beta 0.125] [--samples 5000] [--seed 0]
 *     [--batch 128] [--threads 2] [--no-base-reset] [--ours-keep-sources] [--grid 0.3/0.125,0.7/1] [--single-process] [--keep] [--json]
 *     [--cli [--cli-args="<more zipit merge flags>"]]   (also time the whole `zipit merge`
 *     process, dist/cli/main.js with the CLI's defaults and these flags; --no-base-reset on the
 *     reference's side goes with --cli-args="--no-reset-sources" on ours)
 *     [--only models,wavg,permute,zipit,zipit-13,zipit-7]
 *   npm run bench:reference -- --render run1.json [run2.json ...]   (saved --json runs; several: the means too)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  analyzeGraph,
  analyzeSpaces,
  batches,
  findStopPoints,
  loadData,
  modelScores,
  parseTasks,
  readModelFile,
  storedPreprocessing,
  storedTasks,
  takeBalanced,
  type Dataset,
  type Model,
} from '../src/index.js';
import {
  writeArray,
  type ArrayFile,
  type ImageSet,
  type Manifest,
  type ModelEntry,
  type SideOutput,
} from './reference/exchange.js';
import { MappingError, referenceStateDict } from './reference/state-dict.js';
import {
  renderMean,
  renderTable,
  type ComparedRow,
  type MeasuredRow,
  type Summary,
} from './reference/table.js';

const ROOT = join(import.meta.dirname, '..');
const PYTHON = process.env['ZIPIT_PYTHON'] ?? '/usr/bin/python3';
const METHODS = ['models', 'wavg', 'permute', 'zipit', 'zipit-13', 'zipit-7'];
const ROW_ORDER = [
  'Model A',
  'Model B',
  'Ensemble',
  'W.Avg',
  'Permute',
  'ZipIt!20/20',
  'ZipIt!13/20',
  'ZipIt!7/20',
];
/** How many test images the load check compares logits on. */
const CHECK_IMAGES = 500;

function die(message: string): never {
  console.error(message);
  process.exit(1);
}

function orDie<T>(result: { ok: true; value: T } | { ok: false; message: string }): T {
  return result.ok ? result.value : die(result.message);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tasks: { type: 'string' },
    alpha: { type: 'string', default: '0.3' },
    beta: { type: 'string', default: '0.125' },
    samples: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '0' },
    batch: { type: 'string', default: '128' },
    threads: { type: 'string', default: '2' },
    mean: { type: 'string' },
    std: { type: 'string' },
    'no-base-reset': { type: 'boolean', default: false },
    'ours-keep-sources': { type: 'boolean', default: false },
    grid: { type: 'string' },
    'single-process': { type: 'boolean', default: false },
    cli: { type: 'boolean', default: false },
    'cli-args': { type: 'string', default: '' },
    only: { type: 'string' },
    render: { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

// --render <file>: the table of a summary an earlier --json run printed, without rerunning;
// several files (one per pair): also one Markdown table of every pair and the means.
if (values.render !== undefined) {
  const summaries = [values.render, ...positionals].map(
    (f) => JSON.parse(readFileSync(f, 'utf8')) as Summary,
  );
  for (const s of summaries) console.log(`${renderTable(s)}\n`);
  if (summaries.length > 1) console.log(renderMean(summaries));
  process.exit(0);
}

// --only runs a subset of the rows (e.g. only the ZipIt! ones when alpha/beta change).
const methods = values.only?.split(',') ?? METHODS;
for (const m of methods)
  if (!METHODS.includes(m)) die(`Expected --only among ${METHODS.join(',')}, got '${m}'`);

// --- The reference checkout and its Python, before any work.
const reference = process.env['ZIPIT_REFERENCE'];
const needed = ['model_merger.py', 'matching_functions.py', 'utils.py', 'graphs/resnet_graph.py'];
if (
  reference === undefined ||
  reference === '' ||
  !needed.every((f) => existsSync(join(reference, f)))
)
  die(
    `ZIPIT_REFERENCE must name a checkout of the official ZipIt! code${reference ? ` ('${reference}' is not one)` : ' (it is unset)'}: git clone https://github.com/gstoica27/ZipIt && ZIPIT_REFERENCE=$PWD/ZipIt npm run bench:reference -- <pair dir>`,
  );
const probe = spawnSync(PYTHON, ['-c', 'import torch, scipy, networkx'], { encoding: 'utf8' });
if (probe.status !== 0)
  die(
    `${PYTHON} cannot import torch, scipy and networkx: apt-get install -y python3-torch python3-scipy python3-networkx (or set ZIPIT_PYTHON)`,
  );

// --- The pair.
const pairDir = positionals[0];
if (pairDir === undefined || positionals.length !== 1)
  die(
    'Expected one argument: a pair folder holding a.onnx and b.onnx (or a-bn.onnx and b-bn.onnx)',
  );
if (!existsSync(pairDir) || !statSync(pairDir).isDirectory())
  die(`Expected a pair folder, got '${pairDir}'`);
// The reference's resnet20 needs BatchNorm nodes: prefer the BN-kept files of a PyTorch pair.
const names = existsSync(join(pairDir, 'a-bn.onnx'))
  ? ['a-bn.onnx', 'b-bn.onnx']
  : ['a.onnx', 'b.onnx'];
const paths = names.map((n) => join(pairDir, n));
for (const p of paths) if (!existsSync(p)) die(`Expected ${p}`);
const models: Model[] = paths.map((p) => orDie(readModelFile(p)));
const mapped = models.map((m, k) => {
  try {
    return referenceStateDict(m, paths[k]!);
  } catch (error: unknown) {
    if (error instanceof MappingError) die(error.message);
    throw error;
  }
});
const shape = mapped[0]!;
if (mapped.some((m) => m.width !== shape.width || m.numClasses !== shape.numClasses))
  die(`${paths.join(' and ')} differ in width or classes`);

const pairJsonPath = join(pairDir, 'pair.json');
const pairJson = existsSync(pairJsonPath)
  ? (JSON.parse(readFileSync(pairJsonPath, 'utf8')) as {
      tasks?: number[][];
      preprocessing?: { mean: number[]; std: number[] };
    })
  : {};
const train = orDie(loadData('fashion-mnist:train'));
const test = orDie(loadData('fashion-mnist:test'));
// Tasks: --tasks, else pair.json, else what zipit-trained models store.
const tasks =
  values.tasks !== undefined
    ? orDie(parseTasks(values.tasks, test.numClasses))
    : (pairJson.tasks ?? storedTasks(models));
if (tasks === undefined || tasks.length !== 2)
  die(`${pairDir}: no tasks (no pair.json, none stored in the models); pass --tasks A/B`);
// Preprocessing: --mean/--std, else what the models store (what `zipit compare` uses: the exact
// training values; pair.json rounds them to 3 digits), else pair.json.
const numbers = (text: string): number[] => text.split(',').map(Number);
const stored = storedPreprocessing(models[0]!);
const mean =
  values.mean !== undefined ? numbers(values.mean) : (stored?.mean ?? pairJson.preprocessing?.mean);
const std =
  values.std !== undefined ? numbers(values.std) : (stored?.std ?? pairJson.preprocessing?.std);
if (mean === undefined || std === undefined)
  die(
    `${pairDir}: no preprocessing (no pair.json, none stored in the models); pass --mean and --std`,
  );

const alpha = Number(values.alpha);
const beta = Number(values.beta);
const samples = Number(values.samples);
const seed = Number(values.seed);
const batchSize = Number(values.batch);
const threads = Number(values.threads);

// --- Our stop points for 13/20 and 7/20 (the ends of stages 2 and 1).
const graph = orDie(analyzeGraph(models[0]!));
const points = findStopPoints(graph, orDie(analyzeSpaces(graph)));
const stopAt = (zipped: number): string =>
  points.find((p) => p.zipped === zipped && p.total === 20)?.id ??
  die(`${paths[0]}: no stop point zipping ${zipped}/20 layers`);
const stopPoints = { 'zipit-13': stopAt(13), 'zipit-7': stopAt(7) };

// --- The folder both sides read.
const dir = mkdtempSync(join(tmpdir(), 'zipit-reference-'));
const normalization = { mean, std };
function preprocessed(ds: Dataset): Float32Array {
  const out = new Float32Array(ds.count * ds.channels * ds.height * ds.width);
  let offset = 0;
  for (const batch of orDie(batches(ds, { batchSize: 1000, normalization }))) {
    out.set(batch.input, offset);
    offset += batch.input.length;
  }
  return out;
}
function imageSet(name: string, ds: Dataset): ImageSet {
  const dims = [ds.count, ds.channels, ds.height, ds.width];
  return {
    images: writeArray(dir, `${name}.f32`, dims, preprocessed(ds)),
    pixels: writeArray(dir, `${name}.u8`, dims, ds.images),
    labels: writeArray(dir, `${name}-labels.u8`, [ds.count], ds.labels),
  };
}
// The merge images `zipit compare` draws: --samples of the tasks' classes, evenly, seeded.
const mergeData = orDie(takeBalanced(train, tasks.flat(), Math.min(samples, train.count), seed));
const modelEntries: ModelEntry[] = mapped.map((m, k) => {
  let offset = 0;
  const tensors = m.tensors.map((t) => {
    const entry = { key: t.key, dims: t.dims, offset };
    offset += t.data.length;
    return entry;
  });
  const all = new Float32Array(offset);
  m.tensors.forEach((t, i) => all.set(t.data, tensors[i]!.offset));
  writeArray(dir, `model-${k}.f32`, [offset], all);
  return { path: resolve(paths[k]!), file: `model-${k}.f32`, tensors };
});
const checkSet: Dataset = {
  ...test,
  count: CHECK_IMAGES,
  images: test.images.subarray(0, CHECK_IMAGES * test.channels * test.height * test.width),
  labels: test.labels.subarray(0, CHECK_IMAGES),
};
const checkLogits: ArrayFile[] = [];
for (const [k, model] of models.entries()) {
  const [source] = orDie(await modelScores({ model, label: paths[k]!, mean, std }, checkSet));
  checkLogits.push(
    writeArray(dir, `check-logits-${k}.f32`, [CHECK_IMAGES, source!.labels.length], source!.logits),
  );
}
const manifest: Manifest = {
  pair: pairDir,
  models: modelEntries,
  width: shape.width,
  numClasses: shape.numClasses,
  inChannels: shape.inChannels,
  tasks,
  mean,
  std,
  batchSize,
  threads,
  samples: mergeData.count,
  seed,
  merge: imageSet('merge', mergeData),
  test: imageSet('test', test),
  check: {
    images: writeArray(
      dir,
      'check.f32',
      [CHECK_IMAGES, test.channels, test.height, test.width],
      preprocessed(checkSet),
    ),
    logits: checkLogits,
  },
  stopPoints,
};
writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));

// --- Run both sides.
function runSide(side: 'reference' | 'ours', methods: readonly string[]): SideOutput {
  const common = [
    '--input',
    dir,
    '--methods',
    methods.join(','),
    '--alpha',
    values.alpha!,
    ...(values.grid !== undefined ? ['--grid', values.grid] : []),
  ];
  const args =
    side === 'reference'
      ? [
          join(ROOT, 'bench/reference/run_reference.py'),
          ...common,
          '--beta',
          values.beta!,
          ...(values['no-base-reset'] ? ['--no-base-reset'] : []),
        ]
      : [
          '--import',
          'tsx',
          join(ROOT, 'bench/reference/ours.ts'),
          ...common,
          '--beta',
          values.beta!,
          ...(values['no-base-reset'] || values['ours-keep-sources'] ? [] : ['--base-reset']),
        ];
  console.error(`bench:reference: ${side} ${methods.join(',')}...`);
  // The child's stderr (its progress and errors) goes straight to ours. PyTorch's OpenMP
  // threads spin while they wait: on a machine shared with other jobs, 2 spinning threads ran
  // ResNet-20 7x slower than 1 (63 vs 446 images/s); passive waiting makes 2 as fast as 1.
  const run = spawnSync(side === 'reference' ? PYTHON : process.execPath, args, {
    encoding: 'utf8',
    cwd: ROOT,
    maxBuffer: 64 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { OMP_WAIT_POLICY: 'PASSIVE', ...process.env },
  });
  if (run.status !== 0)
    die(`${side} side failed on ${methods.join(',')} (exit ${run.status}); its message is above`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as SideOutput;
}

const results: Record<'reference' | 'ours', MeasuredRow[]> = { reference: [], ours: [] };
const extras: Record<'reference' | 'ours', SideOutput[]> = { reference: [], ours: [] };
const groups = values['single-process'] ? [methods] : methods.map((m) => [m]);
try {
  for (const group of groups)
    for (const side of ['reference', 'ours'] as const) {
      const out = runSide(side, group);
      extras[side].push(out);
      for (const r of out.rows)
        results[side].push({
          ...r,
          ...(out.peakMiB !== undefined ? { peakMiB: out.peakMiB } : {}),
        });
    }
} finally {
  if (values.keep) console.error(`bench:reference: inputs kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

// --- The whole `zipit merge` process, as a user runs it (the built CLI, its defaults: the
// sources' BN reset, class-aware head, standardised logits; alpha/beta as the rows'): wall time
// from spawn to exit, reading the files, drawing the merge images and writing the model included.
let cli: { seconds: number; command: string } | undefined;
if (values.cli) {
  const main = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(main))
    die(`--cli times the built CLI: run 'npm run build' first (${main} is missing)`);
  const out = mkdtempSync(join(tmpdir(), 'zipit-reference-cli-'));
  const args = [
    main,
    'merge',
    ...paths,
    '--tasks',
    tasks.map((t) => t.join(',')).join('/'),
    '--mean',
    mean.join(','),
    '--std',
    std.join(','),
    '--samples',
    String(samples),
    '--seed',
    String(seed),
    '--batch',
    String(batchSize),
    '--threads',
    String(threads),
    '--alpha',
    String(alpha),
    '--beta',
    String(beta),
    '--out',
    join(out, 'merged.onnx'),
    ...values['cli-args'].split(/\s+/).filter((a) => a !== ''),
  ];
  console.error('bench:reference: timing the whole zipit merge process...');
  const started = performance.now();
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: ROOT });
  const seconds = (performance.now() - started) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (run.status !== 0) die(`zipit merge failed (exit ${run.status}): ${run.stderr}`);
  cli = {
    seconds,
    command: `node ${args
      .map((a) => a.replace(`${ROOT}/`, ''))
      .join(' ')
      .replace(out, '<tmp>')}`,
  };
}

// --- The table.
const find = (side: 'reference' | 'ours', method: string): MeasuredRow | undefined =>
  results[side].find((r) => r.method === method);
// The table's order, then any other rows (a --grid's) in the order they ran.
const order = [
  ...ROW_ORDER,
  ...new Set(results.reference.map((r) => r.method).filter((m) => !ROW_ORDER.includes(m))),
];
const rows: ComparedRow[] = order.flatMap((method) => {
  const ref = find('reference', method);
  const ours = find('ours', method);
  if (ref === undefined && ours === undefined) return [];
  return [
    {
      method,
      ...(ref ? { reference: ref } : {}),
      ...(ours ? { ours } : {}),
      ...(ref && ours
        ? {
            diff: {
              joint: ours.joint - ref.joint,
              tasks: ours.tasks.map((t, i) => t - ref.tasks[i]!),
            },
          }
        : {}),
      ...(ref?.mergeSeconds && ours?.mergeSeconds
        ? { oursOverReference: ours.mergeSeconds / ref.mergeSeconds }
        : {}),
    },
  ];
});
const refExtra = extras.reference[0] as SideOutput & {
  loadMaxAbsDiff?: number[];
  graph?: { stopNodes: Record<string, number | null> };
  torch?: string;
};
const resetSeconds = (side: 'reference' | 'ours'): number | undefined =>
  extras[side].map((o) => o['baseResetSeconds'] as number | undefined).find((s) => s !== undefined);
const baseReset = resetSeconds('reference');
const plainPasses = extras.ours
  .map((o) => o['plainPassSeconds'] as number | undefined)
  .filter((s): s is number => s !== undefined);
const oursBaseReset = resetSeconds('ours');
// The code each of our processes ran (others may commit to the shared tree during a run).
const codes = [
  ...new Set(
    extras.ours.map((o) => {
      const c = o['code'] as { commit: string; dirty: string } | undefined;
      return c === undefined
        ? 'unknown'
        : `${c.commit}${
            c.dirty === ''
              ? ''
              : ` + uncommitted src changes (${c.dirty
                  .split('\n')
                  .map((l) => l.trim())
                  .join(', ')})`
          }`;
    }),
  ),
];
const summary: Summary = {
  oursCode: codes,
  pair: pairDir,
  files: names,
  reference,
  ...(refExtra.torch !== undefined ? { torch: refExtra.torch } : {}),
  width: shape.width,
  tasks,
  preprocessing: { mean, std },
  samples: mergeData.count,
  seed,
  testImages: test.count,
  batchSize,
  threads,
  alpha,
  beta,
  baseReset: !values['no-base-reset'],
  oursBaseReset: !values['no-base-reset'] && !values['ours-keep-sources'],
  stopPoints: {
    ours: stopPoints,
    ...(refExtra.graph ? { reference: refExtra.graph.stopNodes } : {}),
  },
  checkImages: CHECK_IMAGES,
  ...(refExtra.loadMaxAbsDiff ? { loadMaxAbsDiff: refExtra.loadMaxAbsDiff } : {}),
  ...(baseReset !== undefined ? { referenceBaseResetSeconds: baseReset } : {}),
  ...(oursBaseReset !== undefined ? { oursBaseResetSeconds: oursBaseReset } : {}),
  ...(plainPasses.length > 0 ? { plainPassSeconds: Math.min(...plainPasses) } : {}),
  singleProcess: values['single-process'] ?? false,
  ...(cli !== undefined ? { cliSeconds: cli.seconds, cliCommand: cli.command } : {}),
  rows,
};
console.log(values.json ? JSON.stringify(summary) : renderTable(summary));
