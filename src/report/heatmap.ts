/** @file The correlation heat map section: a canvas painted in the browser from quantised values, with an SVG overlay. */
import { coord } from './chart.js';
import { escapeHtml, truncate } from './format.js';
import { HEATMAP_SCRIPT } from './heatmap-script.js';
import { PALETTE } from './palette.js';
import type { CorrelationHeatmap, ReportTask, SpaceMerges } from './types.js';

/**
 * Diverging blue-white-red (ColorBrewer RdBu, 7 classes), evenly spaced over [-1, 1]. Shared
 * by the colour bar (SVG gradient) and the canvas painter (via `data-stops`) so they agree.
 */
export const HEATMAP_STOPS: readonly (readonly [number, number, number])[] = [
  [33, 102, 172],
  [103, 169, 207],
  [209, 229, 240],
  [247, 247, 247],
  [253, 219, 199],
  [239, 138, 98],
  [178, 24, 43],
];

/** Quantisation of the embedded heat map: value v is stored as round(v × 127). */
export const HEATMAP_SCALE = 127;
/** The byte that stands for NaN (a dead channel); never produced by a value in [-1, 1]. */
export const HEATMAP_NAN = -128;

/**
 * Throws when `heatmap` is inconsistent (values not `size²`, `size` not a multiple of
 * `numModels`): a bug in whatever built the data, not a user mistake.
 */
export function checkHeatmap(heatmap: CorrelationHeatmap): void {
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

/**
 * The section: a canvas of `size`² pixels scaled to 480 CSS px (painted by
 * {@link HEATMAP_SCRIPT}), under an SVG overlay with the model blocks' boundaries and names and
 * a colour bar; a readout below shows the value under the pointer.
 */
export function renderHeatmapSection(
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

/**
 * The two scripts that end the page: the values as a `<script type="text/plain">` data block,
 * then the painter ({@link HEATMAP_SCRIPT}) that reads it.
 */
export function renderHeatmapScripts(heatmap: CorrelationHeatmap): string[] {
  return [renderHeatmapValues(heatmap), `<script>${HEATMAP_SCRIPT}</script>`];
}

/**
 * Signed bytes (value × 127, rounded; -128 for NaN), base64: 512² floats as JSON would be
 * several megabytes.
 */
function renderHeatmapValues(heatmap: CorrelationHeatmap): string {
  // [size * size] signed bytes, row-major.
  const codes = Int8Array.from(heatmap.values, (v) =>
    Number.isNaN(v)
      ? HEATMAP_NAN
      : Math.max(-HEATMAP_SCALE, Math.min(HEATMAP_SCALE, Math.round(v * HEATMAP_SCALE))),
  );
  const base64 = Buffer.from(codes.buffer, codes.byteOffset, codes.byteLength).toString('base64');
  return `<script type="text/plain" id="heatmap-values" data-encoding="int8-base64" data-scale="${HEATMAP_SCALE}" data-nan="${HEATMAP_NAN}">${base64}</script>`;
}
