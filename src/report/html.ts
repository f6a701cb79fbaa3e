/** @file Renders {@link ReportData} as one self-contained HTML page: inline CSS, server-side SVG charts, a canvas heat map. */
import type {
  CorrelationHeatmap,
  CurvePoint,
  ReportData,
  ReportMarker,
  ReportRow,
  ReportTask,
  SpaceMerges,
} from './types.js';

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
  if (data.heatmap !== undefined) checkHeatmap(data.heatmap);
  const heatmap = data.heatmap;
  const sections = [
    renderHeader(data),
    renderResults(data.tasks, data.rows),
    data.curve !== undefined || data.markers !== undefined
      ? renderCurveSection(data.curve ?? [], data.markers ?? [])
      : '',
    data.spaces !== undefined ? renderMergeSection(data.spaces) : '',
    heatmap !== undefined ? renderHeatmapSection(heatmap, data.tasks, data.spaces ?? []) : '',
  ];
  const embedded = {
    ...data,
    heatmap:
      heatmap === undefined
        ? undefined
        : { spaceId: heatmap.spaceId, size: heatmap.size, numModels: heatmap.numModels },
  };
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // The policy makes "no network" a property of the file rather than a promise of this code.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(data.title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    ...sections.filter((s) => s !== ''),
    '</main>',
    `<script type="application/json" id="report-data">${jsonForScript(embedded)}</script>`,
    heatmap !== undefined ? renderHeatmapValues(heatmap) : '',
    heatmap !== undefined ? `<script>${HEATMAP_SCRIPT}</script>` : '',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/**
 * Formats an accuracy fraction as a percentage with one decimal (`0.8375` → `83.8`), or `—`
 * when it is not a finite number.
 */
export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? (fraction * 100).toFixed(1) : '—';
}

/**
 * Formats a count of multiply-accumulates with a K/M/G suffix (`40_560_000` → `40.6M`,
 * `1_234_000_000` → `1.23G`), or `—` when it is not a finite number.
 */
export function formatFlops(flops: number): string {
  if (!Number.isFinite(flops)) return '—';
  const abs = Math.abs(flops);
  // The second test keeps 999.96M from printing as "1000.0M".
  if (abs >= 1e9 || (abs / 1e6).toFixed(1) === '1000.0') return `${(flops / 1e9).toFixed(2)}G`;
  if (abs >= 1e6 || (abs / 1e3).toFixed(1) === '1000.0') return `${(flops / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${(flops / 1e3).toFixed(1)}K`;
  return String(Math.round(flops));
}

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Page pieces

const PALETTE = {
  joint: '#1f5fa8',
  avg: '#d9731a',
  cross: '#1f5fa8',
  same: '#e8a25e',
  grid: '#e6e9ee',
  axis: '#8a919c',
  text: '#1d2330',
  muted: '#5b6370',
  marker: '#4a505a',
} as const;

/**
 * Diverging blue-white-red (ColorBrewer RdBu, 7 classes), evenly spaced over [-1, 1]. Shared
 * by the colour bar (SVG gradient) and the canvas painter (via `data-stops`) so they agree.
 */
const HEATMAP_STOPS: readonly (readonly [number, number, number])[] = [
  [33, 102, 172],
  [103, 169, 207],
  [209, 229, 240],
  [247, 247, 247],
  [253, 219, 199],
  [239, 138, 98],
  [178, 24, 43],
];

/** Quantisation of the embedded heat map: value v is stored as round(v × 127). */
const HEATMAP_SCALE = 127;
/** The byte that stands for NaN (a dead channel); never produced by a value in [-1, 1]. */
const HEATMAP_NAN = -128;

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: ${PALETTE.text};
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 20px 56px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
.subtitle { margin: 0; color: ${PALETTE.muted}; overflow-wrap: anywhere;
  font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h2 { font-size: 16px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dde3; }
ul.tasks { margin: 0 0 12px; padding-left: 18px; color: ${PALETTE.muted}; }
ul.tasks b { color: ${PALETTE.text}; font-weight: 600; }
.table-wrap { overflow-x: auto; }
table.results { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.results th, table.results td { padding: 6px 10px; text-align: right; white-space: nowrap;
  border-bottom: 1px solid #e3e6ea; }
table.results th:first-child, table.results td:first-child, table.results th.params { text-align: left; }
table.results thead th { background: #f5f7f9; font-weight: 600; border-bottom: 2px solid #d8dde3; }
table.results tbody tr:hover { background: #f0f4fa; }
table.results td.method { font-weight: 600; }
table.results td.params { text-align: left; white-space: normal; color: ${PALETTE.muted};
  font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.std { color: ${PALETTE.muted}; font-size: 12px; }
.note { color: ${PALETTE.muted}; font-size: 12.5px; margin: 6px 0 0; }
figure { margin: 0; }
figcaption { color: ${PALETTE.muted}; font-size: 12.5px; margin-top: 6px; }
svg.chart { display: block; width: 100%; height: auto; }
svg text { font-family: inherit; }
.heatmap-frame { position: relative; }
.heatmap-frame canvas { position: absolute; image-rendering: pixelated; background: #f3f4f6; }
.heatmap-frame svg { position: absolute; left: 0; top: 0; pointer-events: none; }
#heatmap-readout { display: block; min-height: 1.5em; color: ${PALETTE.muted};
  font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
`;

function renderHeader(data: ReportData): string {
  const subtitle =
    data.subtitle !== undefined && data.subtitle !== ''
      ? `<p class="subtitle">${escapeHtml(data.subtitle)}</p>`
      : '';
  return `<header>\n<h1>${escapeHtml(data.title)}</h1>\n${subtitle}\n</header>`;
}

function renderResults(tasks: readonly ReportTask[], rows: readonly ReportRow[]): string {
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

/** Sorted, de-duplicated, consecutive runs joined: `[4, 0, 1, 2, 9]` → `0–2, 4, 9`. */
function formatClasses(classes: readonly number[]): string {
  const sorted = [...new Set(classes)].sort((a, b) => a - b);
  const runs: string[] = [];
  let start: number | undefined;
  let previous: number | undefined;
  for (const c of [...sorted, Number.NaN]) {
    if (start !== undefined && previous !== undefined && c === previous + 1) {
      previous = c;
      continue;
    }
    if (start !== undefined && previous !== undefined) {
      runs.push(previous === start ? String(start) : `${start}\u2013${previous}`);
    }
    start = c;
    previous = c;
  }
  return runs.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Accuracy vs FLOPs

/** Marker symbols centred on (0, 0), cycled over the markers (the legend maps shape to label). */
const MARKER_SHAPES: readonly string[] = [
  'M0,-7L7,0L0,7L-7,0Z', // diamond
  'M-5.5,-5.5H5.5V5.5H-5.5Z', // square
  'M0,-7L6.5,5H-6.5Z', // triangle
  'M0,7L6.5,-5H-6.5Z', // triangle down
  'M-6,-2H-2V-6H2V-2H6V2H2V6H-2V2H-6Z', // plus
  'M-6,-6L6,6M6,-6L-6,6', // cross (stroked)
];

function renderCurveSection(
  curve: readonly CurvePoint[],
  markers: readonly ReportMarker[],
): string {
  return [
    '<section id="curve">',
    '<h2>Accuracy vs cost</h2>',
    '<figure>',
    renderCurveChart(curve, markers),
    '<figcaption>Partial zipping: each point zips the first layers and keeps one head per model for the rest (labels: layers zipped / total). Solid: joint accuracy; dashed: average of the task accuracies. Shapes mark the reference models; hover a point for its numbers.</figcaption>',
    '</figure>',
    '</section>',
  ].join('\n');
}

function renderCurveChart(curve: readonly CurvePoint[], markers: readonly ReportMarker[]): string {
  const width = 960;
  const height = 420;
  const plot = { left: 64, right: width - 190, top: 20, bottom: height - 52 };
  const finite = (p: { joint: number; avg: number; flops: number }) =>
    Number.isFinite(p.joint) && Number.isFinite(p.avg) && Number.isFinite(p.flops);
  // Sorted by cost so the line runs left to right whatever order the stop points came in.
  const points = curve.filter(finite).sort((a, b) => a.flops - b.flops);
  const refs = markers.filter(finite);
  const all = [...points, ...refs];
  const xScale = niceScale(
    Math.min(...all.map((p) => p.flops)),
    Math.max(...all.map((p) => p.flops)),
    6,
  );
  const accuracies = all.flatMap((p) => [p.joint * 100, p.avg * 100]);
  // Two points of headroom keep marks off the frame; the clamp keeps ticks within 0-100 %.
  const yScale = niceScale(
    Math.max(0, Math.min(...accuracies) - 2),
    Math.min(100, Math.max(...accuracies) + 2),
    6,
  );
  const x = (v: number) =>
    plot.left + ((v - xScale.lo) / (xScale.hi - xScale.lo)) * (plot.right - plot.left);
  const y = (fraction: number) =>
    plot.bottom -
    ((fraction * 100 - yScale.lo) / (yScale.hi - yScale.lo)) * (plot.bottom - plot.top);

  const out: string[] = [
    `<svg class="chart" id="curve-chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Accuracy against multiply-accumulates per image">`,
  ];
  out.push(
    axes(
      plot,
      xScale,
      yScale,
      x,
      (v) => y(v / 100),
      formatTick,
      (v) => `${v}`,
    ),
  );
  out.push(
    axisTitles(plot, 'Multiply-accumulates per image', 'Accuracy (%)'),
    `<g class="series">`,
  );
  for (const series of ['avg', 'joint'] as const) {
    const color = PALETTE[series];
    const dash = series === 'avg' ? ' stroke-dasharray="6 4"' : '';
    if (points.length > 1) {
      const path = points.map((p) => `${coord(x(p.flops))},${coord(y(p[series]))}`).join(' ');
      out.push(
        `<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"${dash} />`,
      );
    }
    for (const p of points) {
      out.push(
        `<circle data-series="${series}" data-label="${escapeHtml(p.label)}" data-value="${numberAttr(p[series])}" data-flops="${numberAttr(p.flops)}" cx="${coord(x(p.flops))}" cy="${coord(y(p[series]))}" r="4.5" fill="${series === 'joint' ? color : '#fff'}" stroke="${color}" stroke-width="2">` +
          `<title>${escapeHtml(`${p.label} (${p.zipped}/${p.total} zipped): ${series === 'joint' ? 'joint' : 'average'} ${formatPercent(p[series])}%, ${formatFlops(p.flops)} MACs`)}</title></circle>`,
      );
    }
  }
  // Labels on the joint points unless they would pile up; the tooltips still have them.
  if (points.length <= 14) {
    for (const p of points) {
      out.push(
        `<text class="point-label" x="${coord(x(p.flops))}" y="${coord(y(p.joint) - 10)}" text-anchor="middle" font-size="11" fill="${PALETTE.muted}">${escapeHtml(p.label)}</text>`,
      );
    }
  }
  const nudges = dodge(
    refs.map((m) => ({ x: x(m.flops), ys: [y(m.joint), y(m.avg)] })),
    points.map((p) => ({ x: x(p.flops), ys: [y(p.joint), y(p.avg)] })),
  );
  for (const [i, m] of refs.entries()) {
    const shape = MARKER_SHAPES[i % MARKER_SHAPES.length] ?? '';
    const mx = x(m.flops) + (nudges[i] ?? 0);
    for (const series of ['joint', 'avg'] as const) {
      const color = PALETTE[series];
      out.push(
        `<path data-marker="${i}" data-series="${series}" data-label="${escapeHtml(m.label)}" data-value="${numberAttr(m[series])}" data-flops="${numberAttr(m.flops)}" transform="translate(${coord(mx)},${coord(y(m[series]))})" d="${shape}" ${markerPaint(shape, color)}>` +
          `<title>${escapeHtml(`${m.label}: ${series === 'joint' ? 'joint' : 'average'} ${formatPercent(m[series])}%, ${formatFlops(m.flops)} MACs`)}</title></path>`,
      );
    }
  }
  out.push('</g>');

  // Legend in the right margin: the two series, then one line per reference shape.
  const lx = plot.right + 24;
  let ly = plot.top + 8;
  const legend: string[] = ['<g class="legend" font-size="12">'];
  for (const [series, name] of [
    ['joint', 'Joint (partial zip)'],
    ['avg', 'Task average'],
  ] as const) {
    const dash = series === 'avg' ? ' stroke-dasharray="6 4"' : '';
    legend.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${PALETTE[series]}" stroke-width="2"${dash} />`,
      `<circle cx="${lx + 13}" cy="${ly}" r="4" fill="${series === 'joint' ? PALETTE[series] : '#fff'}" stroke="${PALETTE[series]}" stroke-width="2" />`,
      `<text x="${lx + 34}" y="${ly + 4}" fill="${PALETTE.text}">${name}</text>`,
    );
    ly += 22;
  }
  if (refs.length > 0) {
    ly += 6;
    legend.push(
      `<text x="${lx}" y="${ly + 4}" fill="${PALETTE.text}">Reference models</text>`,
      `<text x="${lx}" y="${ly + 20}" fill="${PALETTE.muted}" font-size="11">blue: joint, orange: average</text>`,
    );
    ly += 40;
  }
  for (const [i, m] of refs.entries()) {
    const shape = MARKER_SHAPES[i % MARKER_SHAPES.length] ?? '';
    legend.push(
      `<path transform="translate(${lx + 13},${ly})" d="${shape}" ${markerPaint(shape, PALETTE.marker)} />`,
      `<text x="${lx + 34}" y="${ly + 4}" fill="${PALETTE.text}">${escapeHtml(truncate(m.label, 20))}<title>${escapeHtml(m.label)}</title></text>`,
    );
    ly += 22;
  }
  legend.push('</g>');
  out.push(...legend, '</svg>');
  return out.join('\n');
}

/**
 * Horizontal offsets (px) that keep each marker clear of the curve's points and of the markers
 * placed before it: source models often share one cost and nearly one accuracy, and the
 * ensemble sits by the least-zipped point. Tries +1, -1, +2, -2, ... gaps. NOTE: a nudged
 * marker sits a few pixels off its true cost; `data-flops` and the tooltip keep the exact value.
 */
function dodge(
  marks: readonly { x: number; ys: readonly number[] }[],
  fixed: readonly { x: number; ys: readonly number[] }[],
): number[] {
  const gap = 12;
  const placed = [...fixed];
  const offsets: number[] = [];
  for (const mark of marks) {
    const clear = (offset: number) =>
      !placed.some(
        (other) =>
          Math.abs(mark.x + offset - other.x) < gap &&
          mark.ys.some((yi) => other.ys.some((yj) => Math.abs(yi - yj) < gap)),
      );
    const candidates = Array.from({ length: 2 * placed.length + 1 }, (_, i) =>
      i === 0 ? 0 : (i % 2 === 1 ? 1 : -1) * Math.ceil(i / 2) * gap,
    );
    const offset = candidates.find(clear) ?? 0;
    offsets.push(offset);
    placed.push({ x: mark.x + offset, ys: mark.ys });
  }
  return offsets;
}

function markerPaint(shape: string, color: string): string {
  // The cross is two strokes with no area, so it is stroked in the series colour instead.
  return shape.includes('Z')
    ? `fill="${color}" stroke="#fff" stroke-width="1.5"`
    : `fill="none" stroke="${color}" stroke-width="2.5"`;
}

// ---------------------------------------------------------------------------------------------
// Merges per space

function renderMergeSection(spaces: readonly SpaceMerges[]): string {
  return [
    '<section id="merges">',
    '<h2>Merges per feature space</h2>',
    '<figure>',
    renderMergeChart(spaces),
    '<figcaption>Feature joins the matcher made in each space, in graph order: between models (cross-model) and within one model (same-model). Numbers above the bars: cross-model share. Bold ids: residual spaces. Hover a bar for its counts.</figcaption>',
    '</figure>',
    '</section>',
  ].join('\n');
}

function renderMergeChart(spaces: readonly SpaceMerges[]): string {
  const width = 960;
  const height = 320;
  const plot = { left: 64, right: width - 150, top: 24, bottom: height - 52 };
  const total = (s: SpaceMerges) => finiteOr0(s.crossModelMerges) + finiteOr0(s.sameModelMerges);
  const yScale = niceScale(0, Math.max(1, ...spaces.map(total)), 5);
  const y = (v: number) =>
    plot.bottom - ((v - yScale.lo) / (yScale.hi - yScale.lo)) * (plot.bottom - plot.top);
  const band = (plot.right - plot.left) / Math.max(1, spaces.length);
  const barWidth = Math.max(1, Math.min(36, band * 0.7));
  const labelEvery = Math.ceil(spaces.length / 32);
  const out: string[] = [
    `<svg class="chart" id="merge-chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Cross-model and same-model merges per feature space">`,
    axes(
      plot,
      undefined,
      yScale,
      () => 0,
      y,
      () => '',
      (v) => `${v}`,
    ),
    axisTitles(plot, 'Feature space (id, graph order)', 'Merges'),
    '<g class="bars">',
  ];
  for (const [i, s] of spaces.entries()) {
    const cx = plot.left + band * (i + 0.5);
    const left = coord(cx - barWidth / 2);
    const cross = finiteOr0(s.crossModelMerges);
    const same = finiteOr0(s.sameModelMerges);
    const sum = cross + same;
    const share = sum > 0 ? cross / sum : Number.NaN;
    const tip = escapeHtml(
      `space ${s.id} (${s.kind}, ${s.width} features per model): ${s.crossModelMerges} cross-model, ${s.sameModelMerges} same-model merges` +
        (Number.isFinite(share) ? ` (${formatPercent(share)}% cross-model)` : ''),
    );
    out.push(
      `<rect data-series="cross" data-space="${s.id}" data-value="${numberAttr(s.crossModelMerges)}" x="${left}" y="${coord(y(cross))}" width="${coord(barWidth)}" height="${coord(y(0) - y(cross))}" fill="${PALETTE.cross}"><title>${tip}</title></rect>`,
      `<rect data-series="same" data-space="${s.id}" data-value="${numberAttr(s.sameModelMerges)}" x="${left}" y="${coord(y(sum))}" width="${coord(barWidth)}" height="${coord(y(cross) - y(sum))}" fill="${PALETTE.same}"><title>${tip}</title></rect>`,
    );
    if (i % labelEvery === 0) {
      const weight = s.kind === 'residual' ? ' font-weight="700"' : '';
      out.push(
        `<text x="${coord(cx)}" y="${plot.bottom + 16}" text-anchor="middle" font-size="11" fill="${PALETTE.text}"${weight}>${s.id}</text>`,
      );
    }
    if (spaces.length <= 24 && Number.isFinite(share)) {
      out.push(
        `<text class="share" data-space="${s.id}" data-value="${numberAttr(share)}" x="${coord(cx)}" y="${coord(y(sum) - 5)}" text-anchor="middle" font-size="10.5" fill="${PALETTE.muted}">${Math.round(share * 100)}%</text>`,
      );
    }
  }
  out.push('</g>');
  const lx = plot.right + 24;
  out.push(
    '<g class="legend" font-size="12">',
    `<rect x="${lx}" y="${plot.top}" width="14" height="14" fill="${PALETTE.cross}" />`,
    `<text x="${lx + 22}" y="${plot.top + 11}" fill="${PALETTE.text}">Cross-model</text>`,
    `<rect x="${lx}" y="${plot.top + 24}" width="14" height="14" fill="${PALETTE.same}" />`,
    `<text x="${lx + 22}" y="${plot.top + 35}" fill="${PALETTE.text}">Same-model</text>`,
    '</g>',
    '</svg>',
  );
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Correlation heat map

function checkHeatmap(heatmap: CorrelationHeatmap): void {
  const { size, numModels, values } = heatmap;
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`Expected heatmap.size to be a positive integer, got ${size}`);
  }
  if (!Number.isInteger(numModels) || numModels < 1 || size % numModels !== 0) {
    throw new Error(
      `Expected heatmap.numModels to be a positive divisor of size ${size}, got ${numModels}`,
    );
  }
  if (values.length !== size * size) {
    throw new Error(
      `Expected heatmap.values to hold size * size = ${size * size} numbers, got ${values.length}`,
    );
  }
}

function renderHeatmapSection(
  heatmap: CorrelationHeatmap,
  tasks: readonly ReportTask[],
  spaces: readonly SpaceMerges[],
): string {
  const { size, numModels, spaceId } = heatmap;
  const block = size / numModels;
  const display = 480; // CSS pixels; 512 features still land close to one pixel each
  const left = 110;
  const top = 40;
  const frame = { width: left + display + 110, height: top + display + 12 };
  const cell = display / size;
  // Block names: the task names when there is one task per model, as in the usual setup.
  const names =
    tasks.length === numModels
      ? tasks.map((t) => t.name)
      : Array.from({ length: numModels }, (_, k) => `model ${k + 1}`);
  const svg: string[] = [
    `<svg class="heatmap-overlay" width="${frame.width}" height="${frame.height}" viewBox="0 0 ${frame.width} ${frame.height}" aria-hidden="true">`,
    `<rect x="${left}" y="${top}" width="${display}" height="${display}" fill="none" stroke="${PALETTE.text}" stroke-width="1" />`,
  ];
  for (let k = 1; k < numModels; k++) {
    const at = coord(left + k * block * cell);
    const end = coord(left + display);
    const endY = coord(top + display);
    svg.push(
      `<line class="block-boundary" data-boundary="${k}" x1="${at}" x2="${at}" y1="${top}" y2="${endY}" stroke="#111" stroke-width="1.5" />`,
      `<line class="block-boundary" data-boundary="${k}" x1="${left}" x2="${end}" y1="${at}" y2="${at}" stroke="#111" stroke-width="1.5" />`,
    );
  }
  for (const [k, name] of names.entries()) {
    const mid = (k + 0.5) * block * cell;
    // About 7 px per character at 12 px: keep a name within its block.
    const label = escapeHtml(truncate(name, Math.max(8, Math.floor((block * cell) / 7))));
    svg.push(
      `<text x="${coord(left + mid)}" y="${top - 10}" text-anchor="middle" font-size="12" fill="${PALETTE.text}">${label}</text>`,
      `<text transform="translate(${left - 10},${coord(top + mid)}) rotate(-90)" text-anchor="middle" font-size="12" fill="${PALETTE.text}">${label}</text>`,
    );
  }
  // Colour bar, drawn from the same stops the canvas uses.
  const barX = left + display + 28;
  const stops = HEATMAP_STOPS.map(
    (c, i) =>
      `<stop offset="${coord((100 * (HEATMAP_STOPS.length - 1 - i)) / (HEATMAP_STOPS.length - 1))}%" stop-color="rgb(${c.join(',')})" />`,
  ).reverse();
  svg.push(
    `<defs><linearGradient id="heatmap-gradient" x1="0" y1="0" x2="0" y2="1">${stops.join('')}</linearGradient></defs>`,
    `<rect x="${barX}" y="${top}" width="16" height="${display}" fill="url(#heatmap-gradient)" stroke="#c5cad1" />`,
  );
  for (const v of [1, 0.5, 0, -0.5, -1]) {
    const ty = top + ((1 - v) / 2) * display;
    svg.push(
      `<line x1="${barX + 16}" x2="${barX + 21}" y1="${coord(ty)}" y2="${coord(ty)}" stroke="${PALETTE.axis}" />`,
      `<text x="${barX + 25}" y="${coord(ty + 4)}" font-size="11" fill="${PALETTE.muted}">${v > 0 ? `+${v}` : `${v}`}</text>`,
    );
  }
  svg.push('</svg>');
  const canvas = `<canvas id="heatmap" width="${size}" height="${size}" data-size="${size}" data-num-models="${numModels}" data-stops="${escapeHtml(JSON.stringify(HEATMAP_STOPS))}" style="left:${left}px;top:${top}px;width:${display}px;height:${display}px"></canvas>`;
  const space = spaces.find((s) => s.id === spaceId);
  const about =
    space !== undefined
      ? `${space.kind} space, ${space.width} features per model`
      : `${block} features per model`;
  return [
    '<section id="correlation">',
    `<h2>Feature correlation, space ${spaceId}</h2>`,
    `<figure data-space="${spaceId}">`,
    `<div class="heatmap-frame" style="width:${frame.width}px;height:${frame.height}px">`,
    canvas,
    svg.join('\n'),
    '</div>',
    '<output id="heatmap-readout" for="heatmap">Hover the map to read a correlation.</output>',
    `<figcaption>Correlation between all models\u2019 features in space ${spaceId} (${escapeHtml(about)}; ${numModels} models, ${size}\u00d7${size}). Lines separate the models: diagonal blocks are within one model, off-diagonal blocks across models. Grey: undefined (a constant feature).</figcaption>`,
    '<noscript><p class="note">The heat map needs JavaScript to paint.</p></noscript>',
    '</figure>',
    '</section>',
  ].join('\n');
}

function renderHeatmapValues(heatmap: CorrelationHeatmap): string {
  // [size * size] signed bytes, row-major, base64.
  const codes = Int8Array.from(heatmap.values, (v) =>
    Number.isNaN(v)
      ? HEATMAP_NAN
      : Math.max(-HEATMAP_SCALE, Math.min(HEATMAP_SCALE, Math.round(v * HEATMAP_SCALE))),
  );
  const base64 = Buffer.from(codes.buffer, codes.byteOffset, codes.byteLength).toString('base64');
  return `<script type="text/plain" id="heatmap-values" data-encoding="int8-base64" data-scale="${HEATMAP_SCALE}" data-nan="${HEATMAP_NAN}">${base64}</script>`;
}

/**
 * Paints `#heatmap` from `#heatmap-values` and shows the value under the pointer. Plain ES5 so
 * any browser that opens the file runs it; it reads everything from the DOM, so no value is
 * spliced into code.
 */
const HEATMAP_SCRIPT = `
(function () {
  'use strict';
  var canvas = document.getElementById('heatmap');
  var source = document.getElementById('heatmap-values');
  var readout = document.getElementById('heatmap-readout');
  if (!canvas || !source || !canvas.getContext) return;
  var size = Number(canvas.getAttribute('data-size'));
  var numModels = Number(canvas.getAttribute('data-num-models'));
  var stops = JSON.parse(canvas.getAttribute('data-stops'));
  var scale = Number(source.getAttribute('data-scale'));
  var nan = Number(source.getAttribute('data-nan'));
  var binary = atob(source.textContent.replace(/\\s+/g, ''));
  var codes = new Int8Array(binary.length);
  for (var i = 0; i < binary.length; i++) codes[i] = (binary.charCodeAt(i) << 24) >> 24;
  // One colour per possible byte, indexed by code + 128.
  var lut = new Uint8ClampedArray(256 * 4);
  for (var code = -128; code < 128; code++) {
    var o = (code + 128) * 4;
    lut[o + 3] = 255;
    if (code === nan) { lut[o] = 200; lut[o + 1] = 203; lut[o + 2] = 208; continue; }
    var t = ((code / scale + 1) / 2) * (stops.length - 1);
    var j = Math.min(stops.length - 2, Math.floor(t));
    var f = t - j;
    for (var ch = 0; ch < 3; ch++) lut[o + ch] = stops[j][ch] + (stops[j + 1][ch] - stops[j][ch]) * f;
  }
  var context = canvas.getContext('2d');
  var image = context.createImageData(size, size);
  var pixels = image.data;
  for (var p = 0; p < size * size; p++) {
    var from = (codes[p] + 128) * 4;
    var to = p * 4;
    pixels[to] = lut[from];
    pixels[to + 1] = lut[from + 1];
    pixels[to + 2] = lut[from + 2];
    pixels[to + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  canvas.setAttribute('data-painted', 'true');
  if (!readout) return;
  var idle = readout.textContent;
  var block = size / numModels;
  function describe(index) {
    return 'model ' + (Math.floor(index / block) + 1) + ', feature ' + (index % block);
  }
  canvas.addEventListener('mousemove', function (event) {
    var box = canvas.getBoundingClientRect();
    var col = Math.min(size - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * size)));
    var row = Math.min(size - 1, Math.max(0, Math.floor(((event.clientY - box.top) / box.height) * size)));
    var value = codes[row * size + col];
    readout.textContent = 'row ' + row + ' (' + describe(row) + ') \\u00d7 column ' + col + ' (' + describe(col) + '): ' +
      (value === nan ? 'undefined' : (value / scale).toFixed(2));
  });
  canvas.addEventListener('mouseleave', function () { readout.textContent = idle; });
})();
`;

// ---------------------------------------------------------------------------------------------
// SVG helpers

interface Plot {
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

interface Scale {
  readonly lo: number;
  readonly hi: number;
  readonly ticks: readonly number[];
}

/** Grid, axis lines and tick labels; `xScale` undefined draws no x ticks (a band axis). */
function axes(
  plot: Plot,
  xScale: Scale | undefined,
  yScale: Scale,
  x: (v: number) => number,
  y: (v: number) => number,
  xLabel: (v: number) => string,
  yLabel: (v: number) => string,
): string {
  const out: string[] = [`<g class="axes" font-size="11" fill="${PALETTE.muted}">`];
  for (const v of yScale.ticks) {
    const ty = coord(y(v));
    out.push(
      `<line x1="${plot.left}" x2="${plot.right}" y1="${ty}" y2="${ty}" stroke="${PALETTE.grid}" />`,
      `<text x="${plot.left - 8}" y="${coord(y(v) + 4)}" text-anchor="end">${escapeHtml(yLabel(v))}</text>`,
    );
  }
  for (const v of xScale?.ticks ?? []) {
    const tx = coord(x(v));
    out.push(
      `<line x1="${tx}" x2="${tx}" y1="${plot.top}" y2="${plot.bottom}" stroke="${PALETTE.grid}" />`,
      `<text x="${tx}" y="${plot.bottom + 18}" text-anchor="middle">${escapeHtml(xLabel(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" stroke="${PALETTE.axis}" />`,
    `<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" stroke="${PALETTE.axis}" />`,
    '</g>',
  );
  return out.join('\n');
}

function axisTitles(plot: Plot, xTitle: string, yTitle: string): string {
  const midX = coord((plot.left + plot.right) / 2);
  const midY = coord((plot.top + plot.bottom) / 2);
  return [
    `<text class="axis-title" x="${midX}" y="${plot.bottom + 42}" text-anchor="middle" font-size="12.5" fill="${PALETTE.text}">${escapeHtml(xTitle)}</text>`,
    `<text class="axis-title" transform="translate(${plot.left - 46},${midY}) rotate(-90)" text-anchor="middle" font-size="12.5" fill="${PALETTE.text}">${escapeHtml(yTitle)}</text>`,
  ].join('\n');
}

/**
 * Round bounds and about `target` ticks at 1, 2, 2.5 or 5 × 10^k covering [min, max]. A
 * degenerate range (one point, or no points at all) is widened so the scale never divides by 0.
 */
function niceScale(min: number, max: number, target: number): Scale {
  let lo = Number.isFinite(min) ? min : 0;
  let hi = Number.isFinite(max) ? max : 1;
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const first = Math.floor(lo / step);
  const last = Math.ceil(hi / step);
  const ticks = Array.from({ length: last - first + 1 }, (_, i) =>
    Number(((first + i) * step).toPrecision(12)),
  );
  return { lo: first * step, hi: last * step, ticks };
}

/** A coordinate with at most two decimals: smaller files, and sub-pixel precision is plenty. */
function coord(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** The exact number as an attribute (`String` round-trips a double), so tests can compare. */
function numberAttr(v: number): string {
  return String(v);
}

/** An axis tick needs no padding zeros: `600.0M` → `600M`, `1.20G` → `1.2G`. */
function formatTick(flops: number): string {
  return formatFlops(flops)
    .replace(/(\.\d*?)0+(?=[KMG]?$)/, '$1')
    .replace(/\.(?=[KMG]?$)/, '');
}

function finiteOr0(v: number): number {
  return Number.isFinite(v) ? v : 0;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}\u2026`;
}

/** JSON safe inside a `<script>` element: `<` escaped so no text can close the element. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}
