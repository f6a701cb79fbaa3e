/** @file The results section: the task list and one table row per method, every number also in `data-value`. */
import { escapeHtml, formatClasses, formatFlops, formatPercent, numberAttr } from './format.js';
import type { ReportRow, ReportTask } from './types.js';

/**
 * The results section: which classes each task covers, then a table of joint, per-task and
 * average accuracy (± the standard deviation when a row has one), FLOPs and parameters.
 * Each number cell carries the exact input in `data-value` (and `data-std`).
 */
export function renderResults(tasks: readonly ReportTask[], rows: readonly ReportRow[]): string {
  const taskList =
    tasks.length === 0
      ? ''
      : `<ul class="tasks">${tasks
          .map(
            (t, k) =>
              `<li data-task="${k}"><b>${escapeHtml(t.name)}</b>: ${t.classes.length} classes (${escapeHtml(formatClasses(t.classes))})</li>`,
          )
          .join('')}</ul>`;
  const withParams = rows.some((r) => r.params !== undefined);
  const head = [
    '<th scope="col">Method</th>',
    '<th scope="col" title="Prediction among all tasks\u2019 classes">Joint</th>',
    ...tasks.map(
      (t) =>
        `<th scope="col" title="${escapeHtml(`Accuracy on ${t.name}, among its own classes`)}">${escapeHtml(t.name)}</th>`,
    ),
    '<th scope="col" title="Mean of the task accuracies">Avg</th>',
    '<th scope="col" title="Multiply-accumulates per image">FLOPs</th>',
    withParams ? '<th scope="col" class="params">Parameters</th>' : '',
  ].join('');
  const body = rows.map((row, r) => {
    const cells = [
      `<td class="method">${escapeHtml(row.method)}</td>`,
      accuracyCell('joint', row.joint, row.std?.joint),
      ...tasks.map((_, k) => accuracyCell(`task-${k}`, row.tasks[k], row.std?.tasks[k])),
      accuracyCell('avg', row.avg, row.std?.avg),
      `<td data-col="flops" data-value="${numberAttr(row.flops)}">${formatFlops(row.flops)}</td>`,
      withParams ? `<td class="params">${escapeHtml(row.params ?? '')}</td>` : '',
    ];
    return `<tr data-row="${r}">${cells.join('')}</tr>`;
  });
  const empty =
    rows.length === 0
      ? `<tr><td colspan="${tasks.length + 4 + (withParams ? 1 : 0)}">No results.</td></tr>`
      : '';
  return [
    '<section id="results">',
    '<h2>Results</h2>',
    taskList,
    '<div class="table-wrap">',
    `<table class="results"><thead><tr>${head}</tr></thead><tbody>${body.join('\n')}${empty}</tbody></table>`,
    '</div>',
    '<p class="note">Accuracy in %; ± is the standard deviation over runs. Joint: prediction among all classes; task columns: among that task\u2019s classes only. FLOPs count multiply-accumulates per image.</p>',
    '</section>',
  ].join('\n');
}

function accuracyCell(column: string, value: number | undefined, std: number | undefined): string {
  const shown = value ?? Number.NaN;
  const stdAttr = std !== undefined ? ` data-std="${numberAttr(std)}"` : '';
  const stdText =
    std !== undefined && Number.isFinite(std)
      ? `<span class="std"> ± ${formatPercent(std)}</span>`
      : '';
  return `<td data-col="${column}" data-value="${numberAttr(shown)}"${stdAttr}>${formatPercent(shown)}${stdText}</td>`;
}
