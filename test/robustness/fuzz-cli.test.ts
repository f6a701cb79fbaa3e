/**
 * @file Fuzzing the real CLI (issue 15): seeded mutants of a valid model, of IDX images and
 * labels files (plain and gzip) and of a statistics file made by `zipit stats`, each run through
 * `zipit inspect`, `eval`, `merge --out` or `merge --stats`. Every case must end in success
 * (exit 0; for a merge, one complete model alone in its output folder) or in one
 * `zipit: error: ` line (exit 1) with nothing written: never an internal error (70), a stack
 * trace, a signal, a temporary file, a changed input, more than {@link TIMEOUT_MS} or more than
 * {@link PEAK_LIMIT_MIB} of resident memory.
 *
 * `ZIPIT_FUZZ_CASES` (default 18, a few seconds each) and `ZIPIT_FUZZ_SEED` (the first case's
 * seed) set the run. A case is a function of its seed alone (seed modulo the kinds picks the
 * command), so a failure names its seed and `ZIPIT_FUZZ_SEED=<seed> ZIPIT_FUZZ_CASES=1` replays it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeIdx } from '../../src/data/idx.js';
import { mulberry32, type Rng } from '../../src/data/random.js';
import { decodeModel } from '../../src/onnx/model.js';
import { TEST_DIR, TORCH_DIR } from '../helpers.js';

const ROOT = join(TEST_DIR, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const MLP_A = join(TORCH_DIR, 'mlp', 'a.onnx');
const MLP_B = join(TORCH_DIR, 'mlp', 'b.onnx');

/** Cases per run: 18 is three of each kind, about 10 s on two loaded cores (1-2 s a case). */
const CASES = Number(process.env.ZIPIT_FUZZ_CASES ?? 18);
/** Seed of the first case; case i has seed FIRST_SEED + i. */
const FIRST_SEED = Number(process.env.ZIPIT_FUZZ_SEED ?? 15_000);
/** Per case: a clean run takes 1-4 s; the margin is for a machine busy with trainings. */
const TIMEOUT_MS = 30_000;
/** The children's V8 heap limit, so a runaway allocation ends as an error, not a swapped machine. */
const HEAP_LIMIT_MIB = 1024;
/** Resident peak allowed: the heap limit plus onnxruntime and the typed arrays outside the heap. */
const PEAK_LIMIT_MIB = 1536;
/** Children run two at a time (the machine has two cores). */
const CONCURRENCY = 2;
/** GNU time reports a child's peak RSS (`%M`, KiB); without it the memory bound is not checked. */
const GNU_TIME = '/usr/bin/time';
/** Flags that keep a run that gets as far as merging short: 20 images, one thread. */
const QUICK = ['--mean', '0.286', '--std', '0.353', '--batch', '20', '--threads', '1'];
const SAMPLES = ['--samples', '20'];

const KINDS = [
  'inspect-model',
  'eval-model',
  'merge-model',
  'eval-idx',
  'merge-idx',
  'merge-stats',
] as const;
type Kind = (typeof KINDS)[number];

// ---------------------------------------------------------------- mutations

/** A byte span of the original file: a protobuf varint, an IDX dimension, a header field. */
interface Span {
  readonly start: number;
  readonly end: number;
}

/** Where a format keeps its structure: the spans mutations aim at, and its length fields. */
interface Layout {
  /** Spans worth hitting (varints and lengths of a protobuf, the header of IDX or statistics). */
  readonly structure: readonly Span[];
  /** Length or size fields, set to 2^31 by the `length-2^31` mutation. */
  readonly lengths: readonly Span[];
}

/** A varint at `pos` (at most 10 bytes), or undefined when it runs past `end`. */
function readVarint(bytes: Uint8Array, pos: number, end: number): Span & { value: number } {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < end && i < pos + 10; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return { start: pos, end: i + 1, value };
  }
  return { start: pos, end: -1, value: 0 };
}

/**
 * Collects the varint and length spans of the protobuf message in `bytes[start, end)`, going
 * into every length-delimited field that itself parses as a message (graph, nodes, tensors,
 * attributes; a name or raw weights rarely parse and are left alone). False when the span is
 * not a well-formed message.
 */
function walkProtobuf(
  bytes: Uint8Array,
  start: number,
  end: number,
  depth: number,
  found: { varints: Span[]; lengths: Span[] },
): boolean {
  const varints: Span[] = [];
  const lengths: Span[] = [];
  let pos = start;
  while (pos < end) {
    const tag = readVarint(bytes, pos, end);
    if (tag.end < 0 || tag.value < 8) return false;
    pos = tag.end;
    const wire = tag.value % 8;
    if (wire === 0) {
      const value = readVarint(bytes, pos, end);
      if (value.end < 0) return false;
      varints.push(value);
      pos = value.end;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const length = readVarint(bytes, pos, end);
      if (length.end < 0 || length.end + length.value > end) return false;
      lengths.push(length);
      if (depth < 5 && length.value > 0)
        walkProtobuf(bytes, length.end, length.end + length.value, depth + 1, found);
      pos = length.end + length.value;
    } else return false;
  }
  if (pos !== end) return false;
  found.varints.push(...varints);
  found.lengths.push(...lengths);
  return true;
}

function onnxLayout(bytes: Uint8Array): Layout {
  const found = { varints: [] as Span[], lengths: [] as Span[] };
  assert.ok(walkProtobuf(bytes, 0, bytes.length, 0, found), 'the fixture parses as protobuf');
  return { structure: [...found.varints, ...found.lengths], lengths: found.lengths };
}

function idxLayout(bytes: Uint8Array): Layout {
  const dims = Array.from({ length: bytes[3]! }, (_, d) => ({ start: 4 + 4 * d, end: 8 + 4 * d }));
  return { structure: [{ start: 0, end: 4 }, ...dims], lengths: dims };
}

function statsLayout(bytes: Uint8Array): Layout {
  const headerEnd = 16 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return {
    structure: [{ start: 0, end: headerEnd }],
    lengths: [{ start: 12, end: 16 }],
  };
}

type Format = 'onnx' | 'idx' | 'stats';

/** One mutated file and what was done to it (for the failure message). */
interface Mutant {
  readonly bytes: Uint8Array;
  readonly what: string;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const below = (rng: Rng, n: number): number => Math.floor(rng() * n);

/** A position inside a structure span when `structured`, anywhere otherwise. */
function position(rng: Rng, bytes: Uint8Array, layout: Layout, structured = rng() < 0.5): number {
  if (structured && layout.structure.length > 0) {
    const span = pick(rng, layout.structure);
    return Math.min(bytes.length - 1, span.start + below(rng, Math.max(1, span.end - span.start)));
  }
  return below(rng, bytes.length);
}

/** `bytes` with `[start, end)` replaced by `insert`. */
function splice(bytes: Uint8Array, start: number, end: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - (end - start) + insert.length);
  out.set(bytes.subarray(0, start), 0);
  out.set(insert, start);
  out.set(bytes.subarray(end), start + insert.length);
  return out;
}

/** 2^31 as a protobuf varint, and 2^64 - 1, the largest a 10-byte varint holds. */
const VARINT_2_31 = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x08);
const VARINT_HUGE = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);

/** 2^31 (or 0xffffffff) as the u32 a format stores: big-endian in IDX, little-endian in statistics. */
function u32(value: number, format: Format): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, format === 'stats');
  return out;
}

/**
 * A statistics file whose JSON header sets one space's `field` to `value`, re-padded so that
 * everything but that number stays valid.
 */
function statsWithHeaderField(bytes: Uint8Array, rng: Rng): Mutant {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const headerLength = view.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLength))) as {
    spaces: Record<string, unknown>[];
  };
  const space = below(rng, header.spaces.length);
  const field = pick(rng, ['numModels', 'width', 'count']);
  const value = pick(rng, [2 ** 31, 2 ** 53, -1, 0]);
  header.spaces[space]![field] = value;
  let text = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((16 + text.length) / 8) * 8 - 16;
  const withPadding = new Uint8Array(padded).fill(0x20);
  withPadding.set(text);
  text = withPadding;
  const preamble = Uint8Array.from(bytes.subarray(0, 16));
  new DataView(preamble.buffer).setUint32(12, text.length, true);
  const out = new Uint8Array(16 + text.length + bytes.length - 16 - headerLength);
  out.set(preamble, 0);
  out.set(text, 16);
  out.set(bytes.subarray(16 + headerLength), 16 + text.length);
  return { bytes: out, what: `header space ${space} ${field} = ${value}` };
}

/**
 * One seeded mutation: byte flips, a truncation, an insertion, a huge number (a 10-byte varint
 * in a protobuf, 0xffffffff in a binary header) or a length field set to 2^31.
 */
function mutate(bytes: Uint8Array, format: Format, layout: Layout, rng: Rng): Mutant {
  const kind = pick(rng, ['flip', 'truncate', 'insert', 'huge-number', 'length-2^31'] as const);
  switch (kind) {
    case 'flip': {
      const out = Uint8Array.from(bytes);
      const at: number[] = [];
      // All flips in the structure, or all anywhere (in a model: mostly weights, so some
      // mutants get past the reader into the analysis and the merge).
      const structured = rng() < 0.5;
      for (let i = 1 + below(rng, 8); i > 0; i--) {
        const p = position(rng, bytes, layout, structured);
        out[p] = out[p]! ^ (1 + below(rng, 255));
        at.push(p);
      }
      return { bytes: out, what: `flip bytes ${at.join(',')}` };
    }
    case 'truncate': {
      const length = position(rng, bytes, layout);
      return { bytes: bytes.subarray(0, length), what: `truncate to ${length} bytes` };
    }
    case 'insert': {
      const at = position(rng, bytes, layout);
      const inserted = Uint8Array.from({ length: 1 + below(rng, 16) }, () => below(rng, 256));
      return {
        bytes: splice(bytes, at, at, inserted),
        what: `insert ${inserted.length} bytes at ${at}`,
      };
    }
    case 'huge-number': {
      if (format === 'onnx') {
        // Replaces a varint value or length, or a tag, with 2^64 - 1.
        const span = pick(rng, layout.structure);
        return {
          bytes: splice(bytes, span.start, span.end, VARINT_HUGE),
          what: `varint at ${span.start} = 2^64-1`,
        };
      }
      const span = pick(rng, layout.lengths);
      return {
        bytes: splice(bytes, span.start, span.end, u32(0xffffffff, format)),
        what: `u32 at ${span.start} = 0xffffffff`,
      };
    }
    case 'length-2^31': {
      if (format === 'stats' && rng() < 0.5) return statsWithHeaderField(bytes, rng);
      const span = pick(rng, layout.lengths);
      const value = format === 'onnx' ? VARINT_2_31 : u32(2 ** 31, format);
      return {
        bytes: splice(bytes, span.start, span.end, value),
        what: `length at ${span.start} = 2^31`,
      };
    }
  }
}

// ---------------------------------------------------------------- running the CLI

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly seconds: number;
  readonly timedOut: boolean;
  /** Peak resident memory of the node process (MiB), undefined without GNU time. */
  readonly peakMib: number | undefined;
}

/**
 * Runs `zipit <args>` with the heap limit, through GNU time when present (its report goes to
 * `peakFile`, not to stderr); kills the whole process group after {@link TIMEOUT_MS}.
 */
function zipit(args: readonly string[], peakFile: string): Promise<Run> {
  const node = [
    process.execPath,
    `--max-old-space-size=${HEAP_LIMIT_MIB}`,
    '--import',
    'tsx',
    MAIN,
    ...args,
  ];
  const command = existsSync(GNU_TIME) ? [GNU_TIME, '-o', peakFile, '-f', '%M', ...node] : node;
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(command[0]!, command.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, TIMEOUT_MS);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 100_000) stderr += chunk.toString();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let peakMib: number | undefined;
      if (existsSync(peakFile)) {
        // GNU time may write "Command exited with non-zero status 1" before the number.
        const kib = Number(readFileSync(peakFile, 'utf8').trim().split('\n').at(-1));
        if (Number.isFinite(kib) && kib > 0) peakMib = kib / 1024;
      }
      resolve({
        code,
        signal,
        stderr,
        seconds: (performance.now() - start) / 1000,
        timedOut,
        peakMib,
      });
    });
  });
}

/** A progress line of a non-interactive run: `statistics...` or an indented detail. */
const PROGRESS_LINE = /^(?:[a-z][\w -]*\.\.\.|  \S.*)$/;
const ERROR_PREFIX = 'zipit: error: ';

/** What is wrong with a run's exit code and stderr, or [] when it is a success or a user error. */
function stderrProblems(run: Run): string[] {
  if (run.timedOut) return [`no answer within ${TIMEOUT_MS / 1000} s (killed)`];
  if (run.code === null) return [`killed by ${run.signal}`];
  const problems: string[] = [];
  if (run.code !== 0 && run.code !== 1) problems.push(`exit code ${run.code}`);
  if (/^\s+at .+[(:]\d|internal error/m.test(run.stderr)) problems.push('a stack trace');
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  const errors = lines.filter((line) => line.startsWith(ERROR_PREFIX));
  const others = lines.filter((line) => !line.startsWith(ERROR_PREFIX));
  if (run.code === 1 && (errors.length !== 1 || lines.at(-1) !== errors[0]))
    problems.push(`${errors.length} error lines, expected one as the last line`);
  if (run.code === 0 && errors.length > 0) problems.push('an error line on success');
  if (others.some((line) => !PROGRESS_LINE.test(line)))
    problems.push('stderr lines that are neither progress nor the error');
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(run.stderr))
    problems.push('raw control characters');
  return problems;
}

/** The files (recursively) under `dir`. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true }).map(String).sort();

// ---------------------------------------------------------------- the cases

/** The valid files every case starts from. */
interface Sources {
  readonly dir: string;
  readonly files: Record<'model' | 'images' | 'labels' | 'stats', Uint8Array>;
  readonly layouts: Record<'model' | 'images' | 'labels' | 'stats', Layout>;
  /** `idx:<images>,<labels>` of the valid plain files. */
  readonly data: string;
}

/** 20 Fashion-MNIST-shaped images and labels, and the statistics `zipit stats` makes on them. */
async function makeSources(dir: string): Promise<Sources> {
  const count = 20;
  const images = encodeIdx({
    dataType: 'uint8',
    dims: [count, 28, 28],
    data: new Uint8Array(count * 28 * 28).map((_, i) => (i * 7) % 256),
  });
  const labels = encodeIdx({
    dataType: 'uint8',
    dims: [count],
    data: new Uint8Array(count).map((_, i) => i % 10),
  });
  const ref = join(dir, 'ref');
  mkdirSync(ref);
  writeFileSync(join(ref, 'img.idx'), images);
  writeFileSync(join(ref, 'lab.idx'), labels);
  const data = `idx:${join(ref, 'img.idx')},${join(ref, 'lab.idx')}`;
  const stats = join(ref, 's.bin');
  const made = await zipit(
    ['stats', MLP_A, MLP_B, '--data', data, ...SAMPLES, ...QUICK, '--out', stats],
    join(ref, 'stats.peak'),
  );
  assert.equal(made.code, 0, `zipit stats: ${made.stderr}`);
  const files = {
    model: readFileSync(MLP_A),
    images,
    labels,
    stats: readFileSync(stats),
  };
  return {
    dir,
    files,
    data,
    layouts: {
      model: onnxLayout(files.model),
      images: idxLayout(images),
      labels: idxLayout(labels),
      stats: statsLayout(files.stats),
    },
  };
}

/** One case: the mutant written under `<dir>/case-<seed>/in`, and the arguments that use it. */
interface Case {
  readonly seed: number;
  readonly kind: Kind;
  readonly what: string;
  readonly inDir: string;
  readonly outDir: string;
  readonly mutant: string;
  /** The mutant's bytes as written, to check that the run left them alone. */
  readonly bytes: Uint8Array;
  readonly args: string[];
  /** The merged model's path for merge cases. */
  readonly out?: string;
}

function makeCase(seed: number, sources: Sources): Case {
  const kind = KINDS[seed % KINDS.length]!;
  const rng = mulberry32(seed);
  const caseDir = join(sources.dir, `case-${seed}`);
  const inDir = join(caseDir, 'in');
  const outDir = join(caseDir, 'out');
  mkdirSync(inDir, { recursive: true });
  mkdirSync(outDir);
  const out = join(outDir, 'merged.onnx');
  const merge = (models: string[], data: string, ...extra: string[]): string[] => [
    'merge',
    ...models,
    '--data',
    data,
    ...SAMPLES,
    ...QUICK,
    ...extra,
    '--out',
    out,
  ];
  const ref = (name: string): string => join(sources.dir, 'ref', name);
  if (kind === 'inspect-model' || kind === 'eval-model' || kind === 'merge-model') {
    const mutant = mutate(sources.files.model, 'onnx', sources.layouts.model, rng);
    const path = join(inDir, 'a.onnx');
    writeFileSync(path, mutant.bytes);
    const args =
      kind === 'inspect-model'
        ? ['inspect', path]
        : kind === 'eval-model'
          ? ['eval', path, '--data', sources.data, ...QUICK]
          : merge([path, MLP_B], sources.data);
    const what = `a.onnx: ${mutant.what}`;
    return { seed, kind, what, inDir, outDir, mutant: path, bytes: mutant.bytes, args, out };
  }
  if (kind === 'eval-idx' || kind === 'merge-idx') {
    const which = rng() < 0.5 ? 'images' : 'labels';
    const gzip = rng() < 0.5;
    let mutant = mutate(sources.files[which], 'idx', sources.layouts[which], rng);
    let what = mutant.what;
    if (gzip) {
      // Mostly a damaged IDX inside valid gzip; sometimes damaged gzip bytes themselves.
      if (rng() < 0.75) mutant = { bytes: gzipSync(mutant.bytes), what };
      else {
        const zipped = gzipSync(sources.files[which]);
        const plainGzip: Layout = { structure: [{ start: 0, end: 20 }], lengths: [] };
        mutant = mutate(zipped, 'idx', { ...plainGzip, lengths: [{ start: 4, end: 8 }] }, rng);
        what = `gzip bytes: ${mutant.what}`;
      }
    }
    const path = join(inDir, `${which === 'images' ? 'img' : 'lab'}.idx${gzip ? '.gz' : ''}`);
    writeFileSync(path, mutant.bytes);
    const data =
      which === 'images' ? `idx:${path},${ref('lab.idx')}` : `idx:${ref('img.idx')},${path}`;
    const args =
      kind === 'eval-idx' ? ['eval', MLP_A, '--data', data, ...QUICK] : merge([MLP_A, MLP_B], data);
    what = `${basename(path)}: ${what}`;
    return { seed, kind, what, inDir, outDir, mutant: path, bytes: mutant.bytes, args, out };
  }
  const mutant = mutate(sources.files.stats, 'stats', sources.layouts.stats, rng);
  const path = join(inDir, 's.bin');
  writeFileSync(path, mutant.bytes);
  const args = merge([MLP_A, MLP_B], sources.data, '--stats', path);
  const what = `s.bin: ${mutant.what}`;
  return { seed, kind, what, inDir, outDir, mutant: path, bytes: mutant.bytes, args, out };
}

/** Everything wrong with one case's run: its answer, its files, its time and memory. */
function caseProblems(c: Case, run: Run): string[] {
  const problems = stderrProblems(run);
  const outFiles = filesUnder(c.outDir);
  if (run.code === 0 && c.kind.startsWith('merge')) {
    if (outFiles.length !== 1 || outFiles[0] !== 'merged.onnx')
      problems.push(`output folder holds [${outFiles.join(', ')}], expected merged.onnx alone`);
    else if (!decodeModel(readFileSync(c.out!)).ok) problems.push('the output does not decode');
  } else if (outFiles.length > 0) problems.push(`files left: [${outFiles.join(', ')}]`);
  const inFiles = filesUnder(c.inDir);
  if (inFiles.length !== 1) problems.push(`input folder holds [${inFiles.join(', ')}]`);
  if (!Buffer.from(c.bytes).equals(readFileSync(c.mutant))) problems.push('the input changed');
  if (run.peakMib !== undefined && run.peakMib > PEAK_LIMIT_MIB)
    problems.push(`peak RSS ${run.peakMib.toFixed(0)} MiB > ${PEAK_LIMIT_MIB} MiB`);
  return problems;
}

/** `exit 1: Expected the IDX ...` shortened to its first words, to count outcomes by kind. */
function outcomeName(run: Run): string {
  if (run.code !== 1) return `exit ${run.code ?? run.signal}`;
  const line = run.stderr.split('\n').find((l) => l.startsWith(ERROR_PREFIX)) ?? '';
  // Paths differ per case: drop them and keep the message's opening words.
  const words = line.slice(ERROR_PREFIX.length).replace(/\/\S+/g, '<path>').split(' ').slice(0, 6);
  return `exit 1: ${words.join(' ')}`;
}

test(`fuzzing the CLI: ${CASES} mutated models, IDX and statistics files end in success or one error line`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zipit-fuzz-cli-'));
  const sources = await makeSources(dir);
  const fixtures = [readFileSync(MLP_A), readFileSync(MLP_B)];
  if (!existsSync(GNU_TIME))
    t.diagnostic(`${GNU_TIME} not found: the peak memory of the cases is not checked`);
  const failures: string[] = [];
  const outcomes = new Map<string, number>();
  let maxPeak = 0;
  let maxSeconds = 0;
  const started = performance.now();
  const seeds = Array.from({ length: CASES }, (_, i) => FIRST_SEED + i);
  for (let i = 0; i < seeds.length; i += CONCURRENCY) {
    const batch = seeds.slice(i, i + CONCURRENCY).map((seed) => makeCase(seed, sources));
    const runs = await Promise.all(
      batch.map((c) => zipit(c.args, join(c.inDir, '..', 'peak.txt'))),
    );
    for (const [j, c] of batch.entries()) {
      const run = runs[j]!;
      const problems = caseProblems(c, run);
      maxPeak = Math.max(maxPeak, run.peakMib ?? 0);
      maxSeconds = Math.max(maxSeconds, run.seconds);
      const name = `${c.kind} ${outcomeName(run)}`;
      outcomes.set(name, (outcomes.get(name) ?? 0) + 1);
      if (problems.length > 0) {
        failures.push(
          `seed ${c.seed} (${c.kind}; ${c.what}): ${problems.join('; ')}; ` +
            `exit ${run.code ?? run.signal} in ${run.seconds.toFixed(1)} s; ` +
            `stderr ${JSON.stringify(run.stderr.slice(0, 600))}; replay with ` +
            `ZIPIT_FUZZ_SEED=${c.seed} ZIPIT_FUZZ_CASES=1 node --import tsx --test test/robustness/fuzz-cli.test.ts`,
        );
      } else rmSync(join(c.inDir, '..'), { recursive: true, force: true });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(
    `${CASES} cases (seeds ${FIRST_SEED}-${FIRST_SEED + CASES - 1}) in ${seconds.toFixed(1)} s; ` +
      `slowest ${maxSeconds.toFixed(1)} s; peak RSS ${maxPeak.toFixed(0)} MiB`,
  );
  for (const [name, count] of [...outcomes].sort()) t.diagnostic(`${count} x ${name}`);
  assert.ok(fixtures[0]!.equals(readFileSync(MLP_A)) && fixtures[1]!.equals(readFileSync(MLP_B)));
  assert.deepEqual(failures, [], `kept in ${dir}:\n${failures.join('\n')}`);
  rmSync(dir, { recursive: true, force: true });
});
