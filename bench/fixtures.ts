/** @file Every PyTorch fixture through the real `zipit eval`, beside the accuracies PyTorch measured (its manifest). */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'torch-fmnist');

interface Pair {
  name: string;
  dir: string;
  classes_a: number[];
  classes_b: number[];
  model_a: { joint: number; task0: number; task1: number };
  model_b: { joint: number; task0: number; task1: number };
  ensemble: { joint: number; task0: number; task1: number };
}

function zipitEval(paths: string[], tasks: string): { joint: number; tasks: number[] } {
  const cli = existsSync(join(ROOT, 'dist/cli/main.js'))
    ? [join(ROOT, 'dist/cli/main.js')]
    : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
  const run = spawnSync(
    process.execPath,
    [...cli, 'eval', ...paths, '--tasks', tasks, '--mean', '0.2860', '--std', '0.3530', '--json'],
    { encoding: 'utf8', cwd: ROOT },
  );
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout) as { joint: number; tasks: number[] };
}

/** One row per fixture model and ensemble: ours vs PyTorch's joint and task accuracies. */
export async function benchFixtures(): Promise<object> {
  const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as {
    pairs: Pair[];
  };
  const rows: object[] = [];
  for (const pair of manifest.pairs) {
    const tasks = `${pair.classes_a.join(',')}/${pair.classes_b.join(',')}`;
    const a = join(FIXTURES, pair.dir, 'a.onnx');
    const b = join(FIXTURES, pair.dir, 'b.onnx');
    for (const [label, paths, torch] of [
      ['a', [a], pair.model_a],
      ['b', [b], pair.model_b],
      ['ensemble', [a, b], pair.ensemble],
    ] as const) {
      const ours = zipitEval([...paths], tasks);
      rows.push({
        model: `${pair.name}/${label}`,
        zipit: { joint: ours.joint, task0: ours.tasks[0], task1: ours.tasks[1] },
        pytorch: {
          joint: round(torch.joint),
          task0: round(torch.task0),
          task1: round(torch.task1),
        },
      });
    }
  }
  return {
    name: 'fixtures',
    command: 'zipit eval <model(s)> --tasks A/B --mean 0.2860 --std 0.3530 --json',
    rows,
  };
}

function round(value: number): number {
  return Number(value.toFixed(4));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchFixtures(), null, 2));
}
