/** @file The results table as fixed-width text for the terminal. */
import type { ReportRow } from '../report/types.js';

function pct(value: number): string {
  return (100 * value).toFixed(1);
}

/** Rows as an aligned table: method, joint, one column per task, average, MMACs per image. */
export function formatTable(rows: readonly ReportRow[], taskNames: readonly string[]): string {
  const header = ['Method', 'Joint', ...taskNames, 'Avg', 'MMACs'];
  const lines = rows.map((r) => [
    r.method,
    pct(r.joint),
    ...r.tasks.map(pct),
    pct(r.avg),
    (r.flops / 1e6).toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(format)].join(
    '\n',
  );
}
