/**
 * @file Summarises `zipit compare --json` outputs of several pairs: per method, the mean ± std
 * over the pairs of joint, task A, task B and MACs, then each pair's joint. The tables of
 * docs/RESULTS.md "Vision transformers" come from it.
 *
 * Usage: node --import tsx scripts/compare-summary.ts a.json b.json ...
 */
import { readFileSync } from 'node:fs';
import { summarize, type PairResult } from '../src/experiment/experiment.js';
import type { ReportRow } from '../src/report/types.js';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: compare-summary.ts <compare.json>...');
  process.exit(2);
}
const pairs: PairResult[] = files.map((file, pair) => {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { rows: ReportRow[]; tasks: number[][] };
  return { pair, tasks: parsed.tasks, seeds: [0, 0], rows: parsed.rows };
});
const pct = (v: number): string => (100 * v).toFixed(1);
const cell = (v: number, s: number | undefined): string =>
  pairs.length > 1 ? `${pct(v)} ± ${pct(s ?? 0)}` : pct(v);
console.log(`${pairs.length} pair(s): ${files.join(', ')}\n`);
console.log(`| method | joint | task A | task B | MACs | joint per pair |`);
console.log('| --- | --- | --- | --- | --- | --- |');
for (const row of summarize(pairs)) {
  const perPair = pairs.map((p) => pct(p.rows.find((r) => r.method === row.method)!.joint));
  console.log(
    `| ${row.method} | ${cell(row.joint, row.std?.joint)} | ${cell(row.tasks[0]!, row.std?.tasks[0])} | ${cell(row.tasks[1]!, row.std?.tasks[1])} | ${(row.flops / 1e6).toFixed(1)}M | ${perPair.join(', ')} |`,
  );
}
