/**
 * @file A small chart engine that writes static SVG: nice linear scales, data → pixel maps,
 * grid and axes, marker symbols, and dodging of overlapping markers.
 *
 * NOTE: kept instead of a plotting library. Observable Plot rendered with linkedom drew the
 * same two charts, but needed more glue than this file (data attributes stamped on by render
 * transforms, the margin legends, the dodge in pixel space), made each report ~10% larger and
 * each render ~10x slower, and added 62 runtime packages (16 MB) to a CLI that imports the
 * report on start. The measurements are in the commit that split this file out.
 */
import { escapeHtml } from './format.js';
import { PALETTE } from './palette.js';

/** The plotting rectangle inside a chart's viewBox, in px; y grows downwards, as in SVG. */
export interface PlotArea {
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

/** A linear scale's domain `[lo, hi]` and its ticks; `lo` and `hi` are the end ticks. */
export interface Scale {
  readonly lo: number;
  readonly hi: number;
  readonly ticks: readonly number[];
}

/** One axis: its scale, where a value lands in px, and how a tick is labelled. */
export interface Axis {
  readonly scale: Scale;
  readonly at: (value: number) => number;
  readonly label: (value: number) => string;
}

/**
 * Round bounds and about `target` ticks at 1, 2, 2.5 or 5 × 10^k covering [min, max]. A
 * degenerate range (one point, or no points at all) is widened so the scale never divides by 0.
 */
export function niceScale(min: number, max: number, target: number): Scale {
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
  // toPrecision(12) turns 3 × 0.1 = 0.30000000000000004 back into the 0.3 a label should show.
  const ticks = Array.from({ length: last - first + 1 }, (_, i) =>
    Number(((first + i) * step).toPrecision(12)),
  );
  return { lo: first * step, hi: last * step, ticks };
}

/**
 * Maps the scale's `[lo, hi]` linearly onto pixels `[from, to]`; a y axis passes
 * `from = bottom, to = top` so larger values are drawn higher.
 */
export function pixelMap(scale: Scale, from: number, to: number): (value: number) => number {
  return (value) => from + ((value - scale.lo) / (scale.hi - scale.lo)) * (to - from);
}

/**
 * Horizontal grid lines and labels at the y ticks, vertical ones at the x ticks (`x` undefined
 * draws none: a band axis labels its own bars), then the left and bottom axis lines.
 */
export function axes(plot: PlotArea, x: Axis | undefined, y: Axis): string {
  const out: string[] = [`<g class="axes" font-size="11" fill="${PALETTE.muted}">`];
  for (const v of y.scale.ticks) {
    const ty = coord(y.at(v));
    out.push(
      `<line x1="${plot.left}" x2="${plot.right}" y1="${ty}" y2="${ty}" stroke="${PALETTE.grid}" />`,
      `<text x="${plot.left - 8}" y="${coord(y.at(v) + 4)}" text-anchor="end">${escapeHtml(y.label(v))}</text>`,
    );
  }
  for (const v of x?.scale.ticks ?? []) {
    const tx = coord(x?.at(v) ?? 0);
    out.push(
      `<line x1="${tx}" x2="${tx}" y1="${plot.top}" y2="${plot.bottom}" stroke="${PALETTE.grid}" />`,
      `<text x="${tx}" y="${plot.bottom + 18}" text-anchor="middle">${escapeHtml(x?.label(v) ?? '')}</text>`,
    );
  }
  out.push(
    `<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" stroke="${PALETTE.axis}" />`,
    `<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" stroke="${PALETTE.axis}" />`,
    '</g>',
  );
  return out.join('\n');
}

/** The x title centred under the plot, the y title rotated and centred left of it. */
export function axisTitles(plot: PlotArea, xTitle: string, yTitle: string): string {
  const midX = coord((plot.left + plot.right) / 2);
  const midY = coord((plot.top + plot.bottom) / 2);
  return [
    `<text class="axis-title" x="${midX}" y="${plot.bottom + 42}" text-anchor="middle" font-size="12.5" fill="${PALETTE.text}">${escapeHtml(xTitle)}</text>`,
    `<text class="axis-title" transform="translate(${plot.left - 46},${midY}) rotate(-90)" text-anchor="middle" font-size="12.5" fill="${PALETTE.text}">${escapeHtml(yTitle)}</text>`,
  ].join('\n');
}

/** Marker symbols as SVG paths centred on (0, 0), about 13 px across, to cycle over series. */
export const MARKER_SHAPES: readonly string[] = [
  'M0,-7L7,0L0,7L-7,0Z', // diamond
  'M-5.5,-5.5H5.5V5.5H-5.5Z', // square
  'M0,-7L6.5,5H-6.5Z', // triangle
  'M0,7L6.5,-5H-6.5Z', // triangle down
  'M-6,-2H-2V-6H2V-2H6V2H2V6H-2V2H-6Z', // plus
  'M-6,-6L6,6M6,-6L-6,6', // cross (stroked)
];

/** Fill and stroke attributes for a marker shape drawn in `color`. */
export function markerPaint(shape: string, color: string): string {
  // The cross is two strokes with no area, so it is stroked in the colour instead.
  return shape.includes('Z')
    ? `fill="${color}" stroke="#fff" stroke-width="1.5"`
    : `fill="none" stroke="${color}" stroke-width="2.5"`;
}

/** A mark's position in px: one x and the y of each of its points drawn at that x. */
export interface MarkPosition {
  readonly x: number;
  readonly ys: readonly number[];
}

/**
 * Horizontal offsets (px) that keep each of `marks` clear of the `fixed` marks and of the
 * marks placed before it: two marks clash when both their x and one pair of their ys are
 * closer than 12 px. Tries 0, then +1, -1, +2, -2, ... gaps, and keeps 0 if none is clear.
 * NOTE: a nudged marker sits a few pixels off its true value; callers keep the exact value
 * in the element's data attributes and tooltip.
 */
export function dodge(marks: readonly MarkPosition[], fixed: readonly MarkPosition[]): number[] {
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

/** A coordinate with at most two decimals: smaller files, and sub-pixel precision is plenty. */
export function coord(v: number): string {
  return String(Math.round(v * 100) / 100);
}
