/** @file The merges-per-space section: one stacked bar (cross-model, same-model) per feature space. */
import { axes, axisTitles, coord, niceScale, pixelMap, type PlotArea } from './chart.js';
import { escapeHtml, formatPercent, numberAttr } from './format.js';
import { PALETTE } from './palette.js';
import type { SpaceMerges } from './types.js';

/** The section with the chart and its caption. */
export function renderMergeSection(spaces: readonly SpaceMerges[]): string {
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

const WIDTH = 960;
const HEIGHT = 320;
/** The right margin holds the legend. */
const PLOT: PlotArea = { left: 64, right: WIDTH - 150, top: 24, bottom: HEIGHT - 52 };

/**
 * Stacked bars in graph order, cross-model merges below same-model ones, each `rect` carrying
 * `data-series` (`cross` or `same`), `data-space` and `data-value` (the input count). With at
 * most 24 spaces the cross-model share is printed above each bar; with more than 32, only
 * every few ids are labelled.
 */
export function renderMergeChart(spaces: readonly SpaceMerges[]): string {
  const total = (s: SpaceMerges) => finiteOr0(s.crossModelMerges) + finiteOr0(s.sameModelMerges);
  const yScale = niceScale(0, Math.max(1, ...spaces.map(total)), 5);
  const y = pixelMap(yScale, PLOT.bottom, PLOT.top);
  const band = (PLOT.right - PLOT.left) / Math.max(1, spaces.length);
  const barWidth = Math.max(1, Math.min(36, band * 0.7));
  const labelEvery = Math.ceil(spaces.length / 32);
  const out: string[] = [
    `<svg class="chart" id="merge-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="Cross-model and same-model merges per feature space">`,
    axes(PLOT, undefined, { scale: yScale, at: y, label: (v) => `${v}` }),
    axisTitles(PLOT, 'Feature space (id, graph order)', 'Merges'),
    '<g class="bars">',
  ];
  for (const [i, s] of spaces.entries()) {
    const cx = PLOT.left + band * (i + 0.5);
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
        `<text x="${coord(cx)}" y="${PLOT.bottom + 16}" text-anchor="middle" font-size="11" fill="${PALETTE.text}"${weight}>${s.id}</text>`,
      );
    }
    if (spaces.length <= 24 && Number.isFinite(share)) {
      out.push(
        `<text class="share" data-space="${s.id}" data-value="${numberAttr(share)}" x="${coord(cx)}" y="${coord(y(sum) - 5)}" text-anchor="middle" font-size="10.5" fill="${PALETTE.muted}">${Math.round(share * 100)}%</text>`,
      );
    }
  }
  const lx = PLOT.right + 24;
  out.push(
    '</g>',
    '<g class="legend" font-size="12">',
    `<rect x="${lx}" y="${PLOT.top}" width="14" height="14" fill="${PALETTE.cross}" />`,
    `<text x="${lx + 22}" y="${PLOT.top + 11}" fill="${PALETTE.text}">Cross-model</text>`,
    `<rect x="${lx}" y="${PLOT.top + 24}" width="14" height="14" fill="${PALETTE.same}" />`,
    `<text x="${lx + 22}" y="${PLOT.top + 35}" fill="${PALETTE.text}">Same-model</text>`,
    '</g>',
    '</svg>',
  );
  return out.join('\n');
}

/** A NaN or infinite count (a broken report) draws as no bar rather than breaking the scale. */
function finiteOr0(v: number): number {
  return Number.isFinite(v) ? v : 0;
}
