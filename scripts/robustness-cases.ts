/**
 * @file Runs every case of issue 15 ("Hostile and careless input") against the real CLI, each
 * with a time limit and a memory limit, and writes what happens now as the table between the
 * `<!-- cases:begin -->` and `<!-- cases:end -->` markers of docs/ROBUSTNESS.md.
 *
 *     node --import tsx scripts/robustness-cases.ts [--keep] [--only <text>]
 *
 * Every row is a real run: its exit code, its error line, its wall time and peak RSS (GNU time's
 * `%M`), and a verdict from checks of its files (inputs byte-identical, no output or temporary
 * file left, an output complete) and of its answer. A check that fails says so in the verdict;
 * nothing is written from expectations. `--keep` keeps the work folder for a look afterwards;
 * `--only <text>` runs the cases whose name holds `text` and prints their rows without writing.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { once } from 'node:events';
import { constants, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { encodeIdx } from '../src/data/idx.js';
import { readModelFile } from '../src/onnx/files.js';
import { identityChain, wideMlp } from '../bench/hostile-models.js';
import { decodeModel, encodeModel, type Model } from '../src/onnx/model.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const DOC = join(ROOT, 'docs', 'ROBUSTNESS.md');
const BEGIN = '<!-- cases:begin -->';
const END = '<!-- cases:end -->';

/** Per case: a clean run takes 1-10 s; a hang (a FIFO opened, a quadratic pass) is cut here. */
const TIME_LIMIT_S = 60;
/**
 * RLIMIT_DATA of every run (`prlimit --data`): private writable memory, which is what typed
 * arrays, the V8 heap and onnxruntime's buffers take. `--as` cannot be used: V8 reserves about
 * 10 GiB of address space for WebAssembly at start-up.
 */
const MEMORY_LIMIT_GIB = 4;
const GNU_TIME = '/usr/bin/time';
const PRLIMIT = '/usr/bin/prlimit';
const PREPROCESSING = ['--mean', '0.286', '--std', '0.353'];
/** Flags of every merge that gets as far as merging: 20 images of the work folder, one thread. */
const QUICK = [...PREPROCESSING, '--samples', '20', '--batch', '20', '--threads', '1'];
/** A text that forges a success line in red if printed raw. */
const FORGED = '\n\u001b[31mzipit: ok, merged fine\u001b[0m';

// ---------------------------------------------------------------- running the CLI

interface Run {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
  readonly timedOut: boolean;
  /** Peak RSS of the node process (MiB); undefined without GNU time or when it was killed. */
  readonly peakMib: number | undefined;
  /** What the run's driver did (when it sent a signal). */
  readonly note: string | undefined;
}

/** Sends `signal` to a running case: once a temporary file appears in a folder, or on a stderr line. */
type Interrupt = { readonly signal: NodeJS.Signals } & (
  { readonly temporaryIn: string } | { readonly stderrLine: string }
);

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/** The pid of a child of process `parent` (the first found in /proc), if any. */
function childOf(parent: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name, which is in parentheses and may hold spaces: state, ppid.
      const stat = readFileSync(join('/proc', entry, 'stat'), 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) return Number(entry);
    } catch {
      // The process ended meanwhile.
    }
  }
  return undefined;
}

/**
 * Runs `zipit <args>` under the memory limit, through GNU time (its report goes to a file, not
 * to stderr), in its own process group, killed with the group after {@link TIME_LIMIT_S}.
 */
function zipit(args: readonly string[], work: string, interrupt?: Interrupt): Promise<Run> {
  const peakFile = join(work, `.peak-${process.hrtime.bigint()}`);
  let command = [process.execPath, '--import', 'tsx', MAIN, ...args];
  if (existsSync(GNU_TIME)) command = [GNU_TIME, '-o', peakFile, '-f', '%M', ...command];
  if (existsSync(PRLIMIT))
    command = [PRLIMIT, `--data=${MEMORY_LIMIT_GIB * 2 ** 30}`, '--', ...command];
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(command[0]!, command.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // The group is gone already.
      }
    };
    /** The node process: the run's process itself, or the child of GNU time when it wraps it. */
    const signalNode = (signal: NodeJS.Signals): void => {
      const wrapped = command[0] !== process.execPath;
      const pid = wrapped ? childOf(child.pid!) : child.pid;
      if (pid === undefined) return;
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    };
    let timedOut = false;
    let note: string | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGKILL');
    }, TIME_LIMIT_S * 1000);
    const interruptNow = (why: string): void => {
      if (note !== undefined) return;
      note = `${interrupt!.signal} sent ${((performance.now() - start) / 1000).toFixed(2)} s in, ${why}`;
      // To node itself: GNU time, between us and node, would die of SIGTERM and lose the exit code.
      signalNode(interrupt!.signal);
    };
    let poll: NodeJS.Timeout | undefined;
    if (interrupt !== undefined && 'temporaryIn' in interrupt) {
      poll = setInterval(() => {
        const names = readdirSync(interrupt.temporaryIn);
        const temporary = names.find((name) => name.endsWith('.zipit-tmp'));
        if (temporary !== undefined) interruptNow(`when ${temporary} appeared`);
      }, 1);
    }
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < 1e6) stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 1e6) stderr += chunk.toString();
      if (
        interrupt !== undefined &&
        'stderrLine' in interrupt &&
        stderr.split('\n').includes(interrupt.stderrLine)
      )
        interruptNow(`once stderr said '${interrupt.stderrLine}'`);
    });
    child.on('close', (exitCode, exitSignal) => {
      clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
      let code = exitCode;
      let signal: string | null = exitSignal;
      let peakMib: number | undefined;
      if (existsSync(peakFile)) {
        const report = readFileSync(peakFile, 'utf8');
        rmSync(peakFile);
        // GNU time exits 128 + n for a child killed by signal n, and says so in its report.
        const killed = /Command terminated by signal (\d+)/.exec(report);
        if (killed !== null) {
          code = null;
          signal = SIGNAL_NAMES.get(Number(killed[1])) ?? `signal ${killed[1]}`;
        }
        const kib = Number(report.trim().split('\n').at(-1));
        if (Number.isFinite(kib) && kib > 0) peakMib = kib / 1024;
      }
      if (interrupt !== undefined && note === undefined)
        note = `it ended before any ${interrupt.signal}`;
      resolve({
        code,
        signal,
        stdout,
        stderr,
        seconds: (performance.now() - start) / 1000,
        timedOut,
        peakMib: timedOut ? undefined : peakMib,
        note,
      });
    });
  });
}

// ---------------------------------------------------------------- the work folder

/** The work folder: p/ holds every input; each case writes only under its own folder. */
interface Work {
  readonly dir: string;
  readonly p: string;
  /** `idx:p/img.idx,p/lab.idx` (40 images, labels 0-9). */
  readonly data: string;
  /** Byte copies of p/'s regular files, to check that no case changed one. */
  readonly inputs: ReadonlyMap<string, Buffer>;
}

/** The PyTorch MLP fixture a.onnx, edited. */
function editedMlp(edit: (model: Model) => Model): Uint8Array {
  const model = readModelFile(join(ROOT, 'test', 'fixtures', 'torch-fmnist', 'mlp', 'a.onnx'));
  if (!model.ok) throw new Error(model.message);
  return encodeModel(edit(model.value));
}

/** Writes `zeros` zero bytes after `header`, gzip level 1, streamed (never all in memory). */
async function gzipBomb(path: string, header: Buffer, zeros: number): Promise<void> {
  const gzip = createGzip({ level: 1 });
  const done = pipeline(gzip, createWriteStream(path));
  gzip.write(header);
  const chunk = Buffer.alloc(64 * 2 ** 20);
  for (let left = zeros; left > 0; left -= chunk.length) {
    if (!gzip.write(left >= chunk.length ? chunk : chunk.subarray(0, left)))
      await once(gzip, 'drain');
  }
  gzip.end();
  await done;
}

/** An IDX images header: uint8, 3 dims. */
function idxHeader(count: number, height: number, width: number): Buffer {
  const header = Buffer.alloc(16);
  header.set([0, 0, 0x08, 3]);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(height, 8);
  header.writeUInt32BE(width, 12);
  return header;
}

async function makeWork(): Promise<Work> {
  const dir = mkdtempSync(join(tmpdir(), 'zipit-robustness-'));
  const p = join(dir, 'p');
  mkdirSync(p);
  const fixtures = join(ROOT, 'test', 'fixtures', 'torch-fmnist', 'mlp');
  for (const name of ['a.onnx', 'b.onnx']) copyFileSync(join(fixtures, name), join(p, name));
  const count = 40;
  const images = new Uint8Array(count * 28 * 28).map((_, i) => (i * 7) % 256);
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  writeFileSync(
    join(p, 'img.idx'),
    encodeIdx({ dataType: 'uint8', dims: [count, 28, 28], data: images }),
  );
  writeFileSync(join(p, 'lab.idx'), encodeIdx({ dataType: 'uint8', dims: [count], data: labels }));
  const label200 = Uint8Array.from(labels);
  label200[3] = 200;
  writeFileSync(
    join(p, 'lab200.idx'),
    encodeIdx({ dataType: 'uint8', dims: [count], data: label200 }),
  );
  const data = `idx:${join(p, 'img.idx')},${join(p, 'lab.idx')}`;
  const stats = await zipit(
    [
      'stats',
      join(p, 'a.onnx'),
      join(p, 'b.onnx'),
      '--data',
      data,
      ...QUICK,
      '--out',
      join(p, 's.bin'),
    ],
    dir,
  );
  if (stats.code !== 0) throw new Error(`zipit stats failed: ${stats.stderr}`);
  symlinkSync('a.onnx', join(p, 'link.onnx'));
  linkSync(join(p, 'a.onnx'), join(p, 'hard.onnx'));
  symlinkSync('p', join(dir, 'palias'));
  execFileSync('mkfifo', [join(p, 'fifo')]);
  writeFileSync(join(p, 'notes.txt'), 'a file, not a folder\n');
  symlinkSync('loop', join(p, 'loop'));

  // Crafted models.
  writeFileSync(
    join(p, 'ansi-op.onnx'),
    editedMlp((m) => {
      const [first, ...rest] = m.graph.nodes;
      const crafted = { ...first!, opType: `Weird${FORGED}`, name: `node${FORGED}` };
      return { ...m, graph: { ...m.graph, nodes: [crafted, ...rest] } };
    }),
  );
  writeFileSync(
    join(p, 'fancy-op.onnx'),
    editedMlp((m) => ({
      ...m,
      graph: {
        ...m.graph,
        nodes: m.graph.nodes.map((n) => (n.opType === 'Relu' ? { ...n, opType: 'FancyOp' } : n)),
      },
    })),
  );
  writeFileSync(
    join(p, 'extra-output.onnx'),
    editedMlp((m) => {
      const relu = m.graph.nodes.find((n) => n.opType === 'Relu')!.outputs[0]!;
      const outputs = [...m.graph.outputs, { name: relu, elemType: 1 }];
      return { ...m, graph: { ...m.graph, outputs } };
    }),
  );
  writeFileSync(
    join(p, 'std0.onnx'),
    editedMlp((m) => ({
      ...m,
      metadata: { ...m.metadata, 'zipit.mean': '0.286', 'zipit.std': '0' },
    })),
  );
  for (const which of ['a', 'b']) {
    const model = readModelFile(join(p, `${which}.onnx`));
    if (!model.ok) throw new Error(model.message);
    writeFileSync(join(p, `ir0-${which}.onnx`), encodeModel({ ...model.value, irVersion: 0 }));
  }
  writeFileSync(join(p, 'chain.onnx'), encodeModel(identityChain(100_000)));
  writeFileSync(join(p, 'wide-a.onnx'), encodeModel(wideMlp(8000, 1)));
  writeFileSync(join(p, 'wide-b.onnx'), encodeModel(wideMlp(8000, 2)));
  // A header promising 4,000,000 images (3.1 GB) over 3 GiB of zeros; one promising 10 images
  // (7,840 bytes) over 1 GiB: the two bombs of the issue.
  await gzipBomb(join(p, 'bomb-3g.gz'), idxHeader(4_000_000, 28, 28), 3 * 2 ** 30);
  await gzipBomb(join(p, 'bomb-1g-lying.gz'), idxHeader(10, 28, 28), 2 ** 30);

  const inputs = new Map<string, Buffer>();
  for (const name of readdirSync(p)) {
    const path = join(p, name);
    if (lstatSync(path).isFile()) inputs.set(name, readFileSync(path));
  }
  return { dir, p, data, inputs };
}

// ---------------------------------------------------------------- checks

/** What a case checks after its run; each returns the problems found ([] when all is well). */
type Check = (run: Run) => string[];

const ERROR_PREFIX = 'zipit: error: ';

/** Exit `code` (1 unless said) with exactly one `zipit: error:` line, optionally matching `pattern`. */
function oneLineError(pattern?: RegExp, code = 1): Check {
  return (run) => {
    const problems: string[] = [];
    if (run.code !== code) problems.push(`exit ${run.code ?? run.signal}, expected ${code}`);
    const lines = run.stderr.split('\n').filter((l) => l !== '');
    const errors = lines.filter((l) => l.startsWith(ERROR_PREFIX) || /^error: /.test(l));
    if (errors.length !== 1) problems.push(`${errors.length} error lines`);
    if (pattern !== undefined && !pattern.test(run.stderr)) problems.push(`no ${pattern.source}`);
    if (/[\u0000-\u0009\u000b-\u001f]/.test(run.stderr)) problems.push('raw control characters');
    return problems;
  };
}

const succeeds: Check = (run) => (run.code === 0 ? [] : [`exit ${run.code ?? run.signal}`]);

/** The run took less than `seconds`. */
const within =
  (seconds: number): Check =>
  (run) =>
    run.seconds < seconds ? [] : [`took ${run.seconds.toFixed(1)} s (more than ${seconds} s)`];

/** The peak RSS stayed under `mib`. */
const peakUnder =
  (mib: number): Check =>
  (run) =>
    run.peakMib === undefined || run.peakMib < mib ? [] : [`peak ${run.peakMib.toFixed(0)} MiB`];

/** Every file of p/ is byte-identical to what it was. */
function inputsIntact(work: Work): Check {
  return () => {
    const changed = [...work.inputs].filter(([name, bytes]) => {
      const path = join(work.p, name);
      return !existsSync(path) || !bytes.equals(readFileSync(path));
    });
    return changed.map(([name]) => `input ${name} changed`);
  };
}

/** No file under `dir` (the case's output folder). */
const nothingIn =
  (dir: string): Check =>
  () => {
    const left = existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : [];
    return left.length === 0 ? [] : [`left ${left.join(', ')}`];
  };

/** `path` holds a model that decodes (and, optionally, passes `test`). */
function completeModel(path: string, test?: (model: Model) => string[]): Check {
  return () => {
    if (!existsSync(path)) return ['no output'];
    const model = decodeModel(readFileSync(path));
    if (!model.ok) return [`the output does not decode: ${model.message}`];
    return test?.(model.value) ?? [];
  };
}

/** No `.zipit-tmp` (or old-style `.tmp`) file anywhere in the work folder. */
function noTemporaryFiles(work: Work): Check {
  return () => {
    const left = readdirSync(work.dir, { recursive: true })
      .map(String)
      .filter((name) => /\.(zipit-tmp|tmp)$/.test(name));
    return left.map((name) => `temporary file ${name} left`);
  };
}

// ---------------------------------------------------------------- the cases

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly checks: readonly Check[];
  /** The verdict when every check passes (a function: it may say what the run left). */
  readonly verdict: string | (() => string);
  readonly interrupt?: Interrupt;
  /** Prepares the case's files right before its run. */
  readonly before?: () => void;
  /** Tidies up after the row is made (a file a SIGKILL left, which later checks would see). */
  readonly after?: () => void;
}

function cases(work: Work): Case[] {
  const { p, data } = work;
  const at = (name: string): string => join(p, name);
  let serial = 0;
  /** A fresh, empty output folder for one case. */
  const folder = (): string => {
    const dir = join(work.dir, `out${++serial}`);
    mkdirSync(dir);
    return dir;
  };
  const intact = inputsIntact(work);
  const noTemporary = noTemporaryFiles(work);
  const list: Case[] = [];
  /** A merge of the MLP pair (or `models`) that must be refused, leaving every file as it was. */
  const refused = (
    name: string,
    args: (out: string) => string[],
    pattern?: RegExp,
    extra: Check[] = [],
    code = 1,
  ): void => {
    const dir = folder();
    list.push({
      name,
      args: args(join(dir, 'm.onnx')),
      checks: [oneLineError(pattern, code), intact, nothingIn(dir), noTemporary, ...extra],
      verdict: 'refused; inputs intact, no file left',
    });
  };
  const merge = (...args: string[]): string[] => ['merge', ...QUICK, '--data', data, ...args];
  const ab = [at('a.onnx'), at('b.onnx')];

  // 1. Inputs overwritten.
  refused('--out through a symlinked folder onto an input', () =>
    merge(...ab, '--out', join(work.dir, 'palias', 'a.onnx')),
  );
  refused('input given as a symlink, --out its target', () =>
    merge(at('link.onnx'), at('b.onnx'), '--out', at('a.onnx')),
  );
  refused('--out a hard link of an input', () => merge(...ab, '--out', at('hard.onnx')));
  refused('--out a --data file', () => merge(...ab, '--out', at('img.idx')));
  refused('--report a --data file', (out) => merge(...ab, '--out', out, '--report', at('lab.idx')));
  refused('--out the --stats file', () =>
    merge(...ab, '--stats', at('s.bin'), '--out', at('s.bin')),
  );
  refused('train --out a --data file', () => [
    'train',
    '--arch',
    'mlp',
    '--classes',
    '0,1',
    '--epochs',
    '1',
    '--data',
    data,
    '--test',
    data,
    '--out',
    at('img.idx'),
  ]);

  // 2. Hangs.
  const fast = within(20);
  refused('a FIFO as a model', (out) => merge(at('fifo'), at('b.onnx'), '--out', out), /FIFO/, [
    fast,
  ]);
  refused(
    'a FIFO as --data',
    (out) => [
      'merge',
      ...QUICK,
      '--data',
      `idx:${at('fifo')},${at('lab.idx')}`,
      ...ab,
      '--out',
      out,
    ],
    /FIFO/,
    [fast],
  );
  refused('a FIFO as --stats', (out) => merge(...ab, '--stats', at('fifo'), '--out', out), /FIFO/, [
    fast,
  ]);
  refused(
    '--threads 1000',
    (out) => merge(...ab, '--threads', '1000', '--out', out),
    /--threads/,
    [fast],
    2,
  );

  // 3. Memory.
  const small = peakUnder(500);
  const evalData = (spec: string): string[] => [
    'eval',
    at('a.onnx'),
    '--mean',
    '0.286',
    '--std',
    '0.353',
    '--threads',
    '1',
    '--data',
    spec,
  ];
  refused(
    'gzip bomb as IDX images: header promises 3.1 GB, 3 GiB of zeros',
    () => evalData(`idx:${at('bomb-3g.gz')},${at('lab.idx')}`),
    /header promises/,
    [small],
  );
  refused(
    'gzip bomb as IDX images: header promises 10 images, 1 GiB of zeros',
    () => evalData(`idx:${at('bomb-1g-lying.gz')},${at('lab.idx')}`),
    /decompresses to more/,
    [small],
  );
  refused(
    '/dev/zero as a model',
    (out) => merge('/dev/zero', at('b.onnx'), '--out', out),
    /device/,
    [small],
  );
  refused(
    '/dev/zero as --data labels',
    () => evalData(`idx:${at('img.idx')},/dev/zero`),
    /device/,
    [small],
  );
  {
    const dir = folder();
    const out = join(dir, 'm.onnx');
    list.push({
      name: 'two 8,000-wide MLPs (25 MB each) merged with --method wavg',
      args: merge(at('wide-a.onnx'), at('wide-b.onnx'), '--method', 'wavg', '--out', out),
      checks: [succeeds, peakUnder(1024), completeModel(out), intact, noTemporary],
      verdict: 'merged under 1 GiB; output complete',
    });
  }
  refused(
    'the same pair with --method zipit and --max-memory 4',
    (out) => merge(at('wide-a.onnx'), at('wide-b.onnx'), '--max-memory', '4', '--out', out),
    /needs about/,
    [small],
  );

  // 4. NaN.
  refused('--std 1e-300', (out) => [...merge(...ab, '--out', out), '--std', '1e-300'], /--std/);
  refused(
    'a stored std of 0',
    () => ['eval', at('std0.onnx'), '--threads', '1', '--data', data],
    /stored in/,
  );

  // 5. Graph length.
  list.push({
    name: '100k-node Identity chain inspected',
    args: ['inspect', at('chain.onnx')],
    checks: [succeeds, within(TIME_LIMIT_S)],
    verdict: 'as expected (linear time)',
  });

  // 6. Messages.
  refused(
    'an op type holding a newline and ANSI codes',
    () => ['inspect', at('ansi-op.onnx')],
    /\\n/,
  );
  refused(
    'a missing model named with a newline and "zipit: ok, merged fine"',
    () => ['inspect', join(p, `missing${FORGED}.onnx`)],
    /\\n\\x1b/,
  );
  {
    const dir = folder();
    const out = join(dir, `m${FORGED}.onnx`);
    list.push({
      name: 'a merge --out named with a newline and "zipit: ok, merged fine"',
      args: merge(...ab, '--out', out),
      checks: [
        succeeds,
        completeModel(out),
        (run) => (/[\u001b]|\nzipit: ok/.test(run.stdout) ? ['raw name printed'] : []),
      ],
      verdict: 'merged; the name printed escaped',
    });
  }
  refused('a bad data spec', () => evalData('bogus:thing'), /bogus/);

  // 7. Signals.
  // 128 + the signal's number: the exit code a shell reports for a process it stopped.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    const dir = folder();
    const out = join(dir, 'm.onnx');
    list.push({
      name: `${signal} while the output is written (wide wavg merge)`,
      args: merge(at('wide-a.onnx'), at('wide-b.onnx'), '--method', 'wavg', '--out', out),
      interrupt: { signal, temporaryIn: dir },
      checks: [
        (run) =>
          run.code === code || run.signal === signal ? [] : [`exit ${run.code ?? run.signal}`],
        // The write is synchronous: the signal is handled after it, so either nothing or the
        // complete output is there, and never the temporary file.
        (run) => (existsSync(out) ? completeModel(out)(run) : nothingIn(dir)(run)),
        noTemporary,
        intact,
      ],
      verdict: () =>
        `stopped; no temporary file, ${existsSync(out) ? 'the output complete' : 'no output'}`,
    });
  }
  {
    const dir = folder();
    const out = join(dir, 'm.onnx');
    const left = (): string[] => readdirSync(dir).filter((n) => n.endsWith('.zipit-tmp'));
    list.push({
      name: 'SIGKILL while the output is written (wide wavg merge)',
      args: merge(at('wide-a.onnx'), at('wide-b.onnx'), '--method', 'wavg', '--out', out),
      interrupt: { signal: 'SIGKILL', temporaryIn: dir },
      checks: [
        (run) => (run.signal === 'SIGKILL' ? [] : [`exit ${run.code ?? run.signal}`]),
        (run) => (existsSync(out) ? completeModel(out)(run) : []),
        intact,
      ],
      // No handler runs on SIGKILL: what it leaves is reported, then removed for the next cases.
      verdict: () =>
        left().length > 0
          ? `killed; ${left().join(', ')} left (SIGKILL cannot be caught; the name marks it as ours)`
          : `killed; no temporary file left, ${existsSync(out) ? 'the output complete' : 'no output'}`,
      after: () => {
        for (const name of left()) rmSync(join(dir, name));
      },
    });
  }
  {
    const dir = folder();
    list.push({
      name: 'SIGINT during the statistics pass',
      args: merge(...ab, '--out', join(dir, 'm.onnx')),
      interrupt: { signal: 'SIGINT', stderrLine: 'statistics...' },
      checks: [
        (run) =>
          run.code === 130 || run.signal === 'SIGINT' ? [] : [`exit ${run.code ?? run.signal}`],
        nothingIn(dir),
        noTemporary,
        intact,
      ],
      verdict: 'stopped; no file left',
    });
  }

  // 8. User path mistakes.
  refused(
    '--out under a file',
    () => merge(...ab, '--out', join(at('notes.txt'), 'm.onnx')),
    /ENOTDIR/,
  );
  refused(
    '--out through a symlink loop',
    () => merge(...ab, '--out', join(at('loop'), 'm.onnx')),
    /ELOOP/,
  );
  refused(
    '--out with a 300-character name',
    (out) => merge(...ab, '--out', join(dirname(out), `${'x'.repeat(300)}.onnx`)),
    /ENAMETOOLONG/,
  );
  refused(
    '--report under a file',
    (out) => merge(...ab, '--out', out, '--report', join(at('notes.txt'), 'deeper', 'r.html')),
    /ENOTDIR/,
  );

  // 9. Smaller.
  {
    const dir = folder();
    const report = join(dir, 'newdir', 'a', 'b', 'c', 'r.html');
    list.push({
      name: '--report into new folders, the merge fails (missing --test-data)',
      args: merge(
        ...ab,
        '--test-data',
        `idx:${join(p, 'no-such.idx')},${at('lab.idx')}`,
        '--out',
        join(dir, 'm.onnx'),
        '--report',
        report,
      ),
      checks: [oneLineError(/no such file/), nothingIn(dir), intact, noTemporary],
      verdict: 'refused; no folder made',
    });
  }
  {
    const dir = folder();
    const out = join(dir, 'private.onnx');
    list.push({
      name: 'replacing a 0600 output',
      args: merge(...ab, '--out', out),
      before: () => {
        writeFileSync(out, 'old');
        chmodSync(out, 0o600);
      },
      checks: [
        succeeds,
        completeModel(out),
        () => {
          const mode = statSync(out).mode & 0o777;
          return mode === 0o600 ? [] : [`mode ${mode.toString(8)}`];
        },
        noTemporary,
      ],
      verdict: 'replaced; mode stays 0600',
    });
  }
  {
    const dir = folder();
    const out = join(dir, 'm.onnx');
    list.push({
      name: 'a PyTorch pair with ir_version 0 (no stored preprocessing)',
      args: merge(at('ir0-a.onnx'), at('ir0-b.onnx'), '--out', out),
      checks: [
        succeeds,
        completeModel(out, (m) => [
          ...(m.irVersion > 0 ? [] : ['ir_version 0 written']),
          ...(m.metadata['zipit.mean'] === '0.286' && m.metadata['zipit.std'] === '0.353'
            ? []
            : ['--mean/--std not stored']),
        ]),
        intact,
      ],
      verdict: 'merged; valid ir_version, --mean/--std stored',
    });
  }
  refused(
    'models with different graph outputs',
    (out) => merge(at('extra-output.onnx'), at('b.onnx'), '--out', out),
    /graph outputs/,
  );
  refused('an unsupported op', () => ['inspect', at('fancy-op.onnx')], /FancyOp/, [
    (run) => (run.stderr.includes('--stop-at') ? ['advises --stop-at'] : []),
  ]);
  refused(
    'compare --stop-points bogus',
    () => [
      'compare',
      // compare has no --batch.
      ...PREPROCESSING,
      '--samples',
      '20',
      '--threads',
      '1',
      '--tasks',
      '0,1,6,8,9/2,3,4,5,7',
      '--data',
      data,
      '--test-data',
      data,
      ...ab,
      '--stop-points',
      'bogus',
    ],
    /bogus/,
    [(run) => (/evaluat/i.test(run.stderr.split(ERROR_PREFIX)[0]!) ? ['evaluated first'] : [])],
  );
  refused(
    'a label of 200',
    () => evalData(`idx:${at('img.idx')},${at('lab200.idx')}`),
    /label 200/,
  );
  refused(
    'two --mean values for a 1-channel model',
    () => ['eval', at('a.onnx'), '--mean', '0.1,0.2', '--std', '0.3', '--data', data],
    /Expected 1 normalisation mean value,/,
  );
  return list;
}

// ---------------------------------------------------------------- the table

/** Control characters as escapes, so that a cell stays one inert line. */
function escape(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** A Markdown code span for a table cell: pipes escaped, backticks replaced. */
function code(text: string): string {
  return `\`${text.replaceAll('`', "'").replaceAll('|', '\\|')}\``;
}

/** A command line as the table shows it: paths relative to the work folder, the common flags as `<quick>`. */
function shortCommand(work: Work, args: readonly string[]): string {
  return escape(`zipit ${args.join(' ')}`)
    .replace(QUICK.join(' '), '<quick>')
    .replaceAll(`${work.dir}/`, '')
    .replace(/x{300}/, 'x{300}');
}

/** The run's `zipit:` line (its error), else its first stderr line, shortened. */
function stderrLine(work: Work, run: Run): string {
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  const line = lines.find((l) => /^zipit: |^error: /.test(l)) ?? lines[0] ?? '';
  const short = escape(line.replaceAll(`${work.dir}/`, '').replace(/x{300}/, 'x{300}'));
  return short.length > 160 ? `${short.slice(0, 157)}...` : short;
}

function row(work: Work, c: Case, run: Run, problems: readonly string[]): string {
  const exit = run.timedOut
    ? `killed at ${TIME_LIMIT_S} s`
    : run.code !== null
      ? String(run.code)
      : `${run.signal}`;
  const passed = typeof c.verdict === 'string' ? c.verdict : c.verdict();
  const verdict = problems.length === 0 ? passed : `**not as expected**: ${problems.join('; ')}`;
  const note = run.note === undefined ? '' : ` (${run.note})`;
  // Temporary names carry 12 random hex digits; the table keeps them out so that reruns diff.
  const stable = (text: string): string =>
    text.replace(/\.[0-9a-f]{12}\.zipit-tmp/g, '.<hex>.zipit-tmp');
  return [
    '',
    escape(c.name),
    code(shortCommand(work, c.args)),
    exit,
    run.stderr.trim() === '' ? '(none)' : code(stderrLine(work, run)),
    run.seconds.toFixed(1),
    run.peakMib === undefined ? '-' : run.peakMib.toFixed(0),
    stable(`${verdict}${note}`),
    '',
  ]
    .join(' | ')
    .trim();
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt < 0 ? undefined : process.argv[onlyAt + 1];
  const doc = readFileSync(DOC, 'utf8');
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`${DOC} lacks the ${BEGIN} / ${END} markers`);
  const started = performance.now();
  const freeGib = freemem() / 2 ** 30;
  const load = loadavg()[0]!;
  const work = await makeWork();
  const rows: string[] = [];
  let failed = 0;
  for (const c of cases(work).filter((c) => only === undefined || c.name.includes(only))) {
    c.before?.();
    const run = await zipit(c.args, work.dir, c.interrupt);
    const problems: string[] = [];
    if (run.timedOut) problems.push(`no answer within ${TIME_LIMIT_S} s`);
    if (run.code === 70 || /internal error|^\s+at .+:\d+/m.test(run.stderr))
      problems.push('an internal error');
    for (const check of c.checks) problems.push(...check(run));
    if (problems.length > 0) failed += 1;
    rows.push(row(work, c, run, [...new Set(problems)]));
    c.after?.();
    console.log(
      `${problems.length === 0 ? 'ok  ' : 'FAIL'} ${c.name} (${run.seconds.toFixed(1)} s)`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  if (only !== undefined) {
    console.log(rows.join('\n'));
    if (!keep) rmSync(work.dir, { recursive: true, force: true });
    return;
  }
  const nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  const header = [
    `Regenerate with \`node --import tsx scripts/robustness-cases.ts\` (${Math.round(seconds)} s). ` +
      `Last run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on Linux, ` +
      `\`nproc\` ${nproc}, ${freeGib.toFixed(1)} of ${(totalmem() / 2 ** 30).toFixed(1)} GiB free, ` +
      `Node ${process.version}, load average ${load.toFixed(1)} at the start; each case under a ${TIME_LIMIT_S} s time limit ` +
      `and \`prlimit --data\` ${MEMORY_LIMIT_GIB} GiB; peak is GNU time's maximum RSS. ` +
      `\`<quick>\` stands for \`${QUICK.join(' ')}\`; paths are relative to the script's work folder.`,
    '',
    '| case | command | exit | stderr (the error line, else the first) | s | peak MiB | verdict |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ];
  writeFileSync(
    DOC,
    `${doc.slice(0, begin + BEGIN.length)}\n${header.join('\n')}\n${doc.slice(end)}`,
  );
  console.log(
    `${rows.length} cases, ${failed} not as expected; wrote ${DOC} in ${seconds.toFixed(0)} s`,
  );
  if (keep) console.log(`work folder kept: ${work.dir}`);
  else rmSync(work.dir, { recursive: true, force: true });
}

await main();
