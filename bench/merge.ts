/** @file Whole-merge time and peak memory: a ResNet-20 x4 pair, 5,000 merge images, through the real CLI. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeModelFile } from '../src/onnx/files.js';
import { buildZooModel } from '../src/zoo/architectures.js';

const ROOT = join(import.meta.dirname, '..');

/** Runs `zipit merge` on two seeded ResNet-20 x4 models (timing does not depend on training) and reads /usr/bin/time's peak RSS. */
export async function benchMerge(): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), 'zipit-bench-'));
  const paths = [1, 2].map((seed) => {
    const model = buildZooModel({
      arch: 'resnet20',
      width: 4,
      seed,
      inputShape: [1, 28, 28],
      classLabels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      preprocessing: { mean: [0.286], std: [0.353] },
    });
    if (!model.ok) throw new Error(model.message);
    const path = join(dir, `m${seed}.onnx`);
    const written = writeModelFile(path, model.value);
    if (!written.ok) throw new Error(written.message);
    return path;
  });
  const results: Record<string, object> = {};
  for (const method of ['zipit', 'permute']) {
    const cli = existsSync(join(ROOT, 'dist/cli/main.js'))
      ? [join(ROOT, 'dist/cli/main.js')]
      : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
    const args = [
      ...cli,
      'merge',
      ...paths,
      '--method',
      method,
      '--samples',
      '5000',
      '--out',
      join(dir, `${method}.onnx`),
      '--json',
    ];
    const timed = existsSync('/usr/bin/time');
    const run = timed
      ? spawnSync('/usr/bin/time', ['-v', process.execPath, ...args], {
          encoding: 'utf8',
          cwd: ROOT,
        })
      : spawnSync(process.execPath, args, { encoding: 'utf8', cwd: ROOT });
    if (run.status !== 0) throw new Error(`merge failed: ${run.stderr}`);
    const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as {
      seconds: Record<string, number>;
    };
    const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(run.stderr)?.[1];
    results[method] = {
      seconds: Object.fromEntries(
        Object.entries(report.seconds).map(([k, v]) => [k, Number(v.toFixed(2))]),
      ),
      peakMemoryMiB: rss ? Math.round(Number(rss) / 1024) : null,
    };
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    name: 'merge',
    models: 'ResNet-20 x4 pair (seeded init), 1x28x28',
    samples: 5000,
    batch: 128,
    threads: 2,
    results,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchMerge(), null, 2));
}
