/**
 * @file File safety (issue 15): no output replaces an input (by path, symlink or hard link),
 * no read blocks on a FIFO or runs away on a device, a huge file or a gzip bomb, user path
 * mistakes are one-line user errors, and no temporary file outlives a SIGINT or SIGTERM.
 * Most cases run the real CLI and check the exit code, the one error line, that the inputs
 * are byte-identical afterwards and that no temporary file is left.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  chmodSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { encodeIdx } from '../../src/data/idx.js';
import { checkNotAnInput } from '../../src/files/identity.js';
import { writeFailure } from '../../src/files/write-errors.js';
import { readModelFile, writeFileAtomic } from '../../src/onnx/files.js';
import { temporaryDirectory, TEST_DIR, TORCH_DIR } from '../helpers.js';

const ROOT = join(TEST_DIR, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const PREPROCESSING = ['--mean', '0.286', '--std', '0.353'];
/** Few samples, one thread: the runs that get as far as merging stay quick. */
const QUICK_RUN = [...PREPROCESSING, '--samples', '20', '--batch', '20', '--threads', '1'];

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs the CLI (killed after `timeoutMs`, so a hang fails the test instead of stalling it). */
function zipit(args: readonly string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, seconds: (performance.now() - start) / 1000 });
    });
  });
}

/** Runs the cases two at a time (each spawn pays tsx's start-up; the machine has two cores). */
async function runAll(cases: readonly (readonly string[])[]): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < cases.length; i += 2) {
    runs.push(...(await Promise.all(cases.slice(i, i + 2).map((args) => zipit(args, 60_000)))));
  }
  return runs;
}

/**
 * A folder `p` with the two MLP fixtures (a.onnx, b.onnx), an IDX pair (img.idx, lab.idx) of
 * 40 images, a statistics-like file s.bin, `p/link.onnx` -> a.onnx, `p/hard.onnx` a hard link
 * of a.onnx, and `palias` -> p beside it.
 */
function workspace(): { dir: string; p: string; data: string; snapshot(): Map<string, Buffer> } {
  const dir = temporaryDirectory('zipit-file-safety-');
  const p = join(dir, 'p');
  mkdirSync(p);
  for (const name of ['a.onnx', 'b.onnx'])
    writeFileSync(join(p, name), readFileSync(join(TORCH_DIR, 'mlp', name)));
  const count = 40;
  const images = new Uint8Array(count * 28 * 28).map((_, i) => (i * 7) % 256);
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  writeFileSync(
    join(p, 'img.idx'),
    encodeIdx({ dataType: 'uint8', dims: [count, 28, 28], data: images }),
  );
  writeFileSync(join(p, 'lab.idx'), encodeIdx({ dataType: 'uint8', dims: [count], data: labels }));
  writeFileSync(join(p, 's.bin'), 'statistics stand-in\n');
  symlinkSync('a.onnx', join(p, 'link.onnx'));
  linkSync(join(p, 'a.onnx'), join(p, 'hard.onnx'));
  symlinkSync('p', join(dir, 'palias'));
  const snapshot = (): Map<string, Buffer> =>
    new Map(
      ['a.onnx', 'b.onnx', 'img.idx', 'lab.idx', 's.bin'].map((n) => [n, readFileSync(join(p, n))]),
    );
  return { dir, p, data: `idx:${join(p, 'img.idx')},${join(p, 'lab.idx')}`, snapshot };
}

/** No file of the tool's temporary-file forms (`.name.<hex>.zipit-tmp`, formerly `.tmp`) in `dir`. */
function assertNoTemporaryFiles(dir: string): void {
  const left = readdirSync(dir, { recursive: true }).filter((name) =>
    /\.(zipit-tmp|tmp)$/.test(String(name)),
  );
  assert.deepEqual(left, [], `temporary files left in ${dir}`);
}

/** The run failed with exit 1 and exactly `message` as its one stderr line. */
function assertOneLineError(run: Run, message: string | RegExp, name: string): void {
  assert.equal(run.code, 1, `${name}: exit code (signal ${run.signal}); stderr: ${run.stderr}`);
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `${name}: one line, got ${run.stderr}`);
  if (typeof message === 'string') assert.equal(lines[0], `zipit: error: ${message}`, name);
  else assert.match(lines[0]!, message, name);
}

test('EXPECTED FAILURE - an output that is an input (by path, symlink or hard link) is refused; the input is untouched', async () => {
  const { dir, p, data, snapshot } = workspace();
  const before = snapshot();
  const a = join(p, 'a.onnx');
  const b = join(p, 'b.onnx');
  const img = join(p, 'img.idx');
  const lab = join(p, 'lab.idx');
  const stats = join(p, 's.bin');
  const out = join(dir, 'merged.onnx');
  const merge = (...args: string[]): string[] => ['merge', ...QUICK_RUN, '--data', data, ...args];
  const cases: [string, string[], string][] = [
    [
      '--out through a symlinked folder',
      merge(a, b, '--out', join(dir, 'palias', 'a.onnx')),
      `Output path ${join(dir, 'palias', 'a.onnx')} is the same file as input ${a} (via a symlink or hard link); choose another --out.`,
    ],
    [
      'input given as a symlink, --out its target',
      merge(join(p, 'link.onnx'), b, '--out', a),
      `Output path ${a} is the same file as input ${join(p, 'link.onnx')} (via a symlink or hard link); choose another --out.`,
    ],
    [
      '--out a hard link of an input',
      merge(a, b, '--out', join(p, 'hard.onnx')),
      `Output path ${join(p, 'hard.onnx')} is the same file as input ${a} (via a symlink or hard link); choose another --out.`,
    ],
    [
      '--out a --data file',
      merge(a, b, '--out', img),
      `Output path ${img} is one of the inputs; choose another --out.`,
    ],
    [
      '--out a --data file through a symlinked folder',
      merge(a, b, '--out', join(dir, 'palias', 'img.idx')),
      `Output path ${join(dir, 'palias', 'img.idx')} is the same file as input ${img} (via a symlink or hard link); choose another --out.`,
    ],
    [
      '--report a --data file',
      merge(a, b, '--out', out, '--report', lab),
      `Output path ${lab} is one of the inputs; choose another --report.`,
    ],
    [
      '--report a --test-data file',
      [
        'merge',
        ...QUICK_RUN,
        a,
        b,
        '--test-data',
        data,
        '--out',
        out,
        '--report',
        join(dir, 'palias', 'lab.idx'),
      ],
      `Output path ${join(dir, 'palias', 'lab.idx')} is the same file as input ${lab} (via a symlink or hard link); choose another --report.`,
    ],
    [
      '--out a --stats file',
      merge(a, b, '--stats', stats, '--out', stats),
      `Output path ${stats} is one of the inputs; choose another --out.`,
    ],
    [
      'stats --out a --data file',
      ['stats', ...QUICK_RUN, '--data', data, a, b, '--out', lab],
      `Output path ${lab} is one of the inputs; choose another --out.`,
    ],
    [
      'train --out a --data file',
      ['train', '--arch', 'mlp', '--classes', '0,1', '--data', data, '--test', data, '--out', img],
      `Output path ${img} is one of the inputs; choose another --out.`,
    ],
    [
      'compare --report a model through a symlink',
      [
        'compare',
        ...PREPROCESSING,
        '--samples',
        '20',
        '--threads',
        '1',
        '--data',
        data,
        a,
        b,
        '--report',
        join(p, 'link.onnx'),
      ],
      `Output path ${join(p, 'link.onnx')} is the same file as input ${a} (via a symlink or hard link); choose another --report.`,
    ],
  ];
  const runs = await runAll(cases.map(([, args]) => args));
  for (const [i, [name, , message]] of cases.entries()) assertOneLineError(runs[i]!, message, name);
  for (const [name, bytes] of snapshot())
    assert.ok(bytes.equals(before.get(name)!), `${name} intact`);
  assert.equal(existsSync(out), false, 'no output appears');
  assertNoTemporaryFiles(dir);
});

test('EXPECTED FAILURE - FIFOs and devices are refused before they are opened (no hang)', async () => {
  const { dir, p, data, snapshot } = workspace();
  const before = snapshot();
  const fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const a = join(p, 'a.onnx');
  const b = join(p, 'b.onnx');
  const out = join(dir, 'merged.onnx');
  const merge = (...args: string[]): string[] => ['merge', ...QUICK_RUN, ...args, '--out', out];
  const cases: [string, string[], string][] = [
    [
      'a FIFO as a model',
      merge(fifo, b, '--data', data),
      `Cannot read the model file at ${fifo}: it is a FIFO (named pipe), not a regular file; give a file.`,
    ],
    [
      'a FIFO as --data',
      merge(a, b, '--data', `idx:${fifo},${join(p, 'lab.idx')}`),
      `Cannot read the IDX images file at ${fifo}: it is a FIFO (named pipe), not a regular file; give a file.`,
    ],
    [
      'a FIFO as --stats',
      merge(a, b, '--data', data, '--stats', fifo),
      `Cannot read the statistics file at ${fifo}: it is a FIFO (named pipe), not a regular file; give a file.`,
    ],
    [
      '/dev/zero as a model',
      merge('/dev/zero', b, '--data', data),
      'Cannot read the model file at /dev/zero: it is a character device, not a regular file; give a file.',
    ],
    [
      '/dev/zero as --data',
      merge(a, b, '--data', `idx:${join(p, 'img.idx')},/dev/zero`),
      'Cannot read the IDX labels file at /dev/zero: it is a character device, not a regular file; give a file.',
    ],
    [
      'a folder as a model',
      merge(p, b, '--data', data),
      `Cannot read the model file at ${p}: EISDIR, it is a directory; give a file.`,
    ],
  ];
  const runs = await runAll(cases.map(([, args]) => args));
  for (const [i, [name, , message]] of cases.entries()) {
    // A hang is caught by runAll's kill (no exit code); the machine may be busy, so no
    // tighter time bound than that.
    assertOneLineError(runs[i]!, message, name);
  }
  for (const [name, bytes] of snapshot())
    assert.ok(bytes.equals(before.get(name)!), `${name} intact`);
  assert.equal(existsSync(out), false);
});

test('EXPECTED FAILURE - a file over the size limit is refused without reading it', () => {
  const dir = temporaryDirectory('zipit-file-safety-');
  const huge = join(dir, 'huge.onnx');
  // Sparse: 2 GiB + 1 byte of apparent size costs no disk.
  writeFileSync(huge, '');
  truncateSync(huge, 2 * 2 ** 30 + 1);
  const start = performance.now();
  const result = readModelFile(huge);
  assert.ok(!result.ok);
  assert.equal(result.reason, 'file-unreadable');
  assert.equal(
    result.message,
    `Cannot read the model file at ${huge}: it is 2.0 GiB, more than the 2.0 GiB limit; is it the right file?`,
  );
  assert.ok(performance.now() - start < 1000, 'refused from its size, not read');
});

/** Runs `readIdxFile(path)` in a fresh process; its message and peak memory (MB). */
function readIdxInChild(path: string): { message: string; peakMb: number; seconds: number } {
  const script = `
    import { readFileSync } from 'node:fs';
    import { readIdxFile } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'data', 'idx.ts')).href)};
    const result = readIdxFile(${JSON.stringify(path)}, 'IDX images file');
    // VmHWM, not resourceUsage().maxRSS: Linux carries the parent's peak over fork and exec.
    const status = readFileSync('/proc/self/status', 'utf8');
    const peakKb = Number(/VmHWM:\\s+(\\d+) kB/.exec(status)?.[1] ?? 0);
    console.log(JSON.stringify({ message: result.ok ? 'ok' : result.message, peakMb: peakKb / 1024 }));
  `;
  const start = performance.now();
  const stdout = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
  );
  return {
    ...(JSON.parse(stdout) as { message: string; peakMb: number }),
    seconds: (performance.now() - start) / 1000,
  };
}

test('EXPECTED FAILURE - a gzip bomb passed as IDX is refused from its header, with little memory', () => {
  const dir = temporaryDirectory('zipit-file-safety-');
  const zeros = Buffer.alloc(300 * 2 ** 20);
  // A header for 10 images of 28x28, then 300 MiB of zeros: 300 KB of gzip.
  const small = Buffer.alloc(16);
  small.set([0, 0, 8, 3]);
  small.writeUInt32BE(10, 4);
  small.writeUInt32BE(28, 8);
  small.writeUInt32BE(28, 12);
  const lying = join(dir, 'lying.gz');
  writeFileSync(lying, gzipSync(Buffer.concat([small, zeros]), { level: 1 }));
  // A header that promises 4,000,000 images (3.1 GB), over the limit before anything is inflated.
  const big = Buffer.from(small);
  big.writeUInt32BE(4_000_000, 4);
  const greedy = join(dir, 'greedy.gz');
  writeFileSync(greedy, gzipSync(Buffer.concat([big, zeros]), { level: 1 }));

  const lied = readIdxInChild(lying);
  assert.equal(
    lied.message,
    `${lying} decompresses to more than the 7856 bytes its IDX header promises (10x28x28 uint8); it is damaged or not the right file`,
  );
  const asked = readIdxInChild(greedy);
  assert.equal(
    asked.message,
    `Expected the IDX images file ${greedy} to hold at most 2.0 GiB, but its header promises 4000000x28x28 uint8 (3136000016 bytes); it is damaged or not the right file`,
  );
  // Inflating the 300 MiB would take the process past 400 MB; node and tsx alone use ~100.
  for (const run of [lied, asked]) {
    assert.ok(run.peakMb < 250, `peak memory ${run.peakMb.toFixed(0)} MB`);
    assert.ok(run.seconds < 30, `answered in ${run.seconds.toFixed(1)} s`);
  }
});

test('EXPECTED FAILURE - user path mistakes are one-line user errors (exit 1), not internal errors', async () => {
  const { dir, p, data, snapshot } = workspace();
  const before = snapshot();
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'a file, not a folder\n');
  symlinkSync('loop', join(dir, 'loop'));
  const a = join(p, 'a.onnx');
  const b = join(p, 'b.onnx');
  const out = join(dir, 'merged.onnx');
  const longName = join(dir, `${'x'.repeat(300)}.onnx`);
  const merge = (...args: string[]): string[] => [
    'merge',
    ...QUICK_RUN,
    '--data',
    data,
    a,
    b,
    ...args,
  ];
  const cases: [string, string[], string][] = [
    [
      '--out under a file',
      merge('--out', join(file, 'm.onnx')),
      `Cannot write ${join(file, 'm.onnx')} (ENOTDIR): a part of its folder path is a file, not a folder; choose another --out.`,
    ],
    [
      '--out through a symlink loop',
      merge('--out', join(dir, 'loop', 'm.onnx')),
      `Cannot write ${join(dir, 'loop', 'm.onnx')} (ELOOP): its path goes round a loop of symbolic links; fix the links or choose another --out.`,
    ],
    [
      '--out with a 300-character name',
      merge('--out', longName),
      `Cannot write ${longName} (ENAMETOOLONG): the name is too long for the file system; choose a shorter --out.`,
    ],
    [
      '--report under a file',
      merge('--out', out, '--report', join(file, 'deeper', 'r.html')),
      `Cannot write ${join(file, 'deeper', 'r.html')} (ENOTDIR): a part of its folder path is a file, not a folder; choose another --report.`,
    ],
    [
      'train --out under a file',
      ['train', '--arch', 'mlp', '--classes', '0,1', '--data', data, '--out', join(file, 'm.onnx')],
      `Cannot write ${join(file, 'm.onnx')} (ENOTDIR): a part of its folder path is a file, not a folder; choose another --out.`,
    ],
  ];
  const runs = await runAll(cases.map(([, args]) => args));
  for (const [i, [name, , message]] of cases.entries()) assertOneLineError(runs[i]!, message, name);
  for (const [name, bytes] of snapshot())
    assert.ok(bytes.equals(before.get(name)!), `${name} intact`);
  assert.equal(existsSync(out), false);
  assertNoTemporaryFiles(dir);
});

test('EXPECTED FAILURE - a full disk is said to be one (ENOSPC), not a missing folder', () => {
  const error = Object.assign(new Error('ENOSPC: no space left on device, write'), {
    code: 'ENOSPC',
  });
  const result = writeFailure('/data/out.onnx', error);
  assert.ok(!result.ok);
  assert.equal(result.reason, 'unwritable-output');
  assert.equal(
    result.message,
    'Cannot write /data/out.onnx (ENOSPC): the disk is full; free some space or choose another --out.',
  );
});

test('EXPECTED FAILURE - a failed merge with --report creates no folders', async () => {
  const { dir, p, data } = workspace();
  const report = join(dir, 'newdir', 'a', 'b', 'c', 'r.html');
  const missing = join(dir, 'no-such-images.idx');
  // The test data fails to load after every output check, where the folders used to be made.
  const run = await zipit([
    'merge',
    ...QUICK_RUN,
    '--data',
    data,
    join(p, 'a.onnx'),
    join(p, 'b.onnx'),
    '--test-data',
    `idx:${missing},${join(p, 'lab.idx')}`,
    '--out',
    join(dir, 'merged.onnx'),
    '--report',
    report,
  ]);
  assertOneLineError(
    run,
    `Expected the IDX images file at ${missing}, but there is no such file`,
    'missing test data',
  );
  assert.equal(existsSync(join(dir, 'newdir')), false, 'newdir/a/b/c was created');
});

test('replacing an output keeps its mode (0600 stays 0600); writing makes the folders a report asks for', () => {
  const dir = temporaryDirectory('zipit-file-safety-');
  const out = join(dir, 'private.onnx');
  writeFileSync(out, 'old');
  chmodSync(out, 0o600);
  const written = writeFileAtomic(out, 'new');
  assert.ok(written.ok);
  assert.equal(readFileSync(out, 'utf8'), 'new');
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const report = join(dir, 'x', 'y', 'r.html');
  const made = writeFileAtomic(report, '<html>', [], { flag: '--report', createFolders: true });
  assert.ok(made.ok);
  assert.equal(readFileSync(report, 'utf8'), '<html>');
  assertNoTemporaryFiles(dir);
});

test('EXPECTED FAILURE - writeFileAtomic refuses a hard link or a symlinked folder of a protected input', () => {
  const { dir, p, snapshot } = workspace();
  const before = snapshot();
  const a = join(p, 'a.onnx');
  for (const output of [join(p, 'hard.onnx'), join(dir, 'palias', 'a.onnx')]) {
    const result = writeFileAtomic(output, 'overwritten', [a]);
    assert.ok(!result.ok);
    assert.equal(
      result.message,
      `Output path ${output} is the same file as input ${a} (via a symlink or hard link); choose another --out.`,
    );
  }
  // A missing output under a symlinked folder is resolved through its nearest existing folder.
  const missing = checkNotAnInput(join(dir, 'palias', 'new', 'm.onnx'), [join(p, 'new', 'm.onnx')]);
  assert.ok(!missing.ok);
  assert.ok(snapshot().get('a.onnx')!.equals(before.get('a.onnx')!));
  assertNoTemporaryFiles(dir);
});

/** Starts the CLI's main module with a registered temporary file; resolves once it is ready. */
function cliWithTemporaryFile(temporary: string): Promise<{
  child: ReturnType<typeof spawn>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}> {
  const url = (path: string): string => JSON.stringify(pathToFileURL(path).href);
  // main.ts runs on import (with no arguments it prints the help); the interval keeps the
  // process alive as a long merge would, until the signal.
  const script = `
    import { writeFileSync } from 'node:fs';
    import { registerTemporaryFile } from ${url(join(ROOT, 'src', 'files', 'temporary-files.ts'))};
    await import(${url(MAIN)});
    writeFileSync(${JSON.stringify(temporary)}, 'half an output');
    registerTemporaryFile(${JSON.stringify(temporary)});
    console.log('ready');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the CLI did not start: ${stdout}`));
    }, 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^ready$/m.test(stdout)) {
        clearTimeout(timer);
        resolve({ child, exited });
      }
    });
  });
}

test('SIGINT and SIGTERM remove the temporary file of an output being written and exit 130 / 143', async () => {
  const dir = temporaryDirectory('zipit-file-safety-');
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    const temporary = join(dir, `.merged.onnx.0123456789ab.zipit-tmp`);
    const { child, exited } = await cliWithTemporaryFile(temporary);
    assert.ok(existsSync(temporary));
    child.kill(signal);
    const result = await exited;
    assert.deepEqual(result, { code, signal: null }, `${signal}: exit`);
    assert.equal(existsSync(temporary), false, `${signal}: the temporary file is removed`);
  }
});
