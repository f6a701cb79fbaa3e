/**
 * @file Renders {@link ReportData} as one self-contained HTML page, from its sections: the
 * results table (./table.ts), the accuracy-vs-cost and merges charts (./curve-chart.ts,
 * ./merge-chart.ts on the SVG engine in ./chart.ts) and the correlation heat map (./heatmap.ts),
 * in the document of ./page.ts.
 */
import { renderCurveSection } from './curve-chart.js';
import { jsonForScript } from './format.js';
import { checkHeatmap, renderHeatmapScripts, renderHeatmapSection } from './heatmap.js';
import { renderMergeSection } from './merge-chart.js';
import { renderHeader, renderPage } from './page.js';
import { renderResults } from './table.js';
import type { ReportData } from './types.js';

/**
 * Renders a report as one HTML document that needs nothing else: no network, no fonts, no
 * external scripts, and it works from `file://`. The results table and both charts are drawn
 * here as HTML and SVG, so they show even with scripts off; only the heat map is painted by a
 * short inline script from quantised values embedded in the page.
 *
 * Machine-readable copies of every number: table cells and chart marks carry `data-value`
 * (and `data-std`, `data-flops`) with the exact input number, and `#report-data` holds the
 * whole `data` as JSON except `heatmap.values`, which `#heatmap-values` carries as base64
 * signed bytes (value × 127, rounded; -128 for NaN) because 512² floats as JSON would be
 * several megabytes.
 *
 * @throws Error when `data.heatmap` is inconsistent (values not `size²`, `size` not a
 *   multiple of `numModels`): a bug in whatever built the data, not a user mistake.
 */
export function renderReport(data: ReportData): string {
  const { heatmap } = data;
  if (heatmap !== undefined) checkHeatmap(heatmap);
  const sections = [
    renderHeader(data.title, data.subtitle),
    renderResults(data.tasks, data.rows),
    data.curve !== undefined || data.markers !== undefined
      ? renderCurveSection(data.curve ?? [], data.markers ?? [])
      : '',
    data.spaces !== undefined ? renderMergeSection(data.spaces) : '',
    heatmap !== undefined ? renderHeatmapSection(heatmap, data.tasks, data.spaces ?? []) : '',
  ];
  // The values travel apart, as bytes (see renderHeatmapScripts); the JSON keeps the rest.
  const embedded = {
    ...data,
    heatmap:
      heatmap === undefined
        ? undefined
        : { spaceId: heatmap.spaceId, size: heatmap.size, numModels: heatmap.numModels },
  };
  return renderPage(data.title, sections, [
    `<script type="application/json" id="report-data">${jsonForScript(embedded)}</script>`,
    ...(heatmap !== undefined ? renderHeatmapScripts(heatmap) : []),
  ]);
}
