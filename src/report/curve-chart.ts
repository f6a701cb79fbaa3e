/** @file The accuracy-vs-cost section: the partial-zipping curve (joint and average) and the reference models as markers. */
import {
  axes,
  axisTitles,
  coord,
  dodge,
  MARKER_SHAPES,
  markerPaint,
  niceScale,
  pixelMap,
  type PlotArea,
} from './chart.js';
import {
  escapeHtml,
  formatFlops,
  formatPercent,
  formatTick,
  numberAttr,
  truncate,
} from './format.js';
import { PALETTE } from './palette.js';
import type { CurvePoint, ReportMarker } from './types.js';

/** The section with the chart and its caption. */
export function renderCurveSection(
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

const WIDTH = 960;
const HEIGHT = 420;
/** The right margin holds the legend. */
const PLOT: PlotArea = { left: 64, right: WIDTH - 190, top: 20, bottom: HEIGHT - 52 };
const SERIES = ['avg', 'joint'] as const;

/**
 * Accuracy (%) against multiply-accumulates: the curve's points as a solid (joint) and a dashed
 * (average) line with circles, the markers as one symbol each in both colours. Every mark
 * carries `data-series`, `data-label`, `data-value` (the accuracy fraction) and `data-flops`;
 * markers also `data-marker` (their index). Non-finite points are left out.
 */
export function renderCurveChart(
  curve: readonly CurvePoint[],
  markers: readonly ReportMarker[],
): string {
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
  const x = pixelMap(xScale, PLOT.left, PLOT.right);
  const yPercent = pixelMap(yScale, PLOT.bottom, PLOT.top);
  const y = (fraction: number) => yPercent(fraction * 100);

  const out: string[] = [
    `<svg class="chart" id="curve-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="Accuracy against multiply-accumulates per image">`,
    axes(
      PLOT,
      { scale: xScale, at: x, label: formatTick },
      { scale: yScale, at: yPercent, label: (v) => `${v}` },
    ),
    axisTitles(PLOT, 'Multiply-accumulates per image', 'Accuracy (%)'),
    `<g class="series">`,
  ];
  for (const series of SERIES) {
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
          `<title>${escapeHtml(`${p.label} (${p.zipped}/${p.total} zipped): ${seriesName(series)} ${formatPercent(p[series])}%, ${formatFlops(p.flops)} MACs`)}</title></circle>`,
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
  // Source models often share one cost and nearly one accuracy, and the ensemble sits by the
  // least-zipped point: nudge markers sideways off the curve and off each other.
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
          `<title>${escapeHtml(`${m.label}: ${seriesName(series)} ${formatPercent(m[series])}%, ${formatFlops(m.flops)} MACs`)}</title></path>`,
      );
    }
  }
  out.push('</g>', legend(refs), '</svg>');
  return out.join('\n');
}

function seriesName(series: 'joint' | 'avg'): string {
  return series === 'joint' ? 'joint' : 'average';
}

/** Legend in the right margin: the two series, then one line per reference shape. */
function legend(refs: readonly ReportMarker[]): string {
  const lx = PLOT.right + 24;
  let ly = PLOT.top + 8;
  const out: string[] = ['<g class="legend" font-size="12">'];
  for (const [series, name] of [
    ['joint', 'Joint (partial zip)'],
    ['avg', 'Task average'],
  ] as const) {
    const dash = series === 'avg' ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${PALETTE[series]}" stroke-width="2"${dash} />`,
      `<circle cx="${lx + 13}" cy="${ly}" r="4" fill="${series === 'joint' ? PALETTE[series] : '#fff'}" stroke="${PALETTE[series]}" stroke-width="2" />`,
      `<text x="${lx + 34}" y="${ly + 4}" fill="${PALETTE.text}">${name}</text>`,
    );
    ly += 22;
  }
  if (refs.length > 0) {
    ly += 6;
    out.push(
      `<text x="${lx}" y="${ly + 4}" fill="${PALETTE.text}">Reference models</text>`,
      `<text x="${lx}" y="${ly + 20}" fill="${PALETTE.muted}" font-size="11">blue: joint, orange: average</text>`,
    );
    ly += 40;
  }
  for (const [i, m] of refs.entries()) {
    const shape = MARKER_SHAPES[i % MARKER_SHAPES.length] ?? '';
    out.push(
      `<path transform="translate(${lx + 13},${ly})" d="${shape}" ${markerPaint(shape, PALETTE.marker)} />`,
      `<text x="${lx + 34}" y="${ly + 4}" fill="${PALETTE.text}">${escapeHtml(truncate(m.label, 20))}<title>${escapeHtml(m.label)}</title></text>`,
    );
    ly += 22;
  }
  out.push('</g>');
  return out.join('\n');
}
