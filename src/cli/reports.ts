/**
 * @file What the comparing commands (compare, merge --report, demo, experiment) share: task
 * names, the report of a comparison, and the `--report` file's checks and write.
 */
import type { Result } from '../errors.js';
import { checkOutputPath, writeFileAtomic, type CompareOutput } from '../index.js';
import { renderReport } from '../report/html.js';
import type { ReportData, ReportMarker, ReportRow } from '../report/types.js';

/** The name of task `index` in tables and reports: Task A, Task B, ... */
export function taskName(index: number): string {
  return `Task ${String.fromCharCode(65 + index)}`;
}

/** The names of `count` tasks: Task A, Task B, ... */
export function taskNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => taskName(i));
}

/** The rows a report marks on its curve: each source model and their ensemble. */
export function sourceMarkers(rows: readonly ReportRow[]): ReportMarker[] {
  return rows
    .filter((r) => r.method.startsWith('Model') || r.method === 'Ensemble')
    .map((r) => ({ label: r.method, joint: r.joint, avg: r.avg, flops: r.flops }));
}

/** The report of a comparison: table, partial-zipping curve, ZipIt!'s merges per space, one correlation heat map. */
export function comparisonReport(
  title: string,
  subtitle: string,
  tasks: readonly (readonly number[])[],
  result: CompareOutput,
): ReportData {
  // The heat map and merge counts show ZipIt!'s full merge, else the first merge there is.
  const zip = result.merges.get('ZipIt!') ?? [...result.merges.values()][0];
  const heatSpace =
    zip?.spaces.find((s) => s.kind === 'residual') ??
    zip?.spaces.find((s) => s.kind !== 'fixed' && zip.correlations.has(s.id));
  const values = heatSpace ? zip?.correlations.get(heatSpace.id) : undefined;
  const numModels = zip?.report.numModels ?? 2;
  return {
    title,
    subtitle,
    tasks: tasks.map((classes, i) => ({ name: taskName(i), classes })),
    rows: result.rows,
    ...(result.curve.length > 0 ? { curve: result.curve } : {}),
    markers: sourceMarkers(result.rows),
    ...(zip ? { spaces: zip.report.spaces } : {}),
    ...(heatSpace && values
      ? { heatmap: { spaceId: heatSpace.id, size: numModels * heatSpace.width, values, numModels } }
      : {}),
  };
}

/** A `--report` file: named by that flag in messages; its folders are made when it is written. */
const REPORT_OUTPUT = { flag: '--report', createFolders: true } as const;

/**
 * Checks before any work that the `--report` file can be written and replaces none of
 * `protect` (the run's inputs and other outputs). Creates nothing, so a failed run leaves no
 * folder behind.
 */
export function checkReportPath(path: string, protect: readonly string[]): Result<void> {
  return checkOutputPath(path, protect, REPORT_OUTPUT);
}

/** Renders `report` and writes it to the `--report` file, making its folders. */
export function writeReport(
  path: string,
  report: ReportData,
  protect: readonly string[],
): Result<void> {
  return writeFileAtomic(path, renderReport(report), protect, REPORT_OUTPUT);
}
