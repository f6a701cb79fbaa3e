/** @file The merges-per-space chart: stacked bars at hand-computed coordinates, labels, shares. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMergeChart } from '../../src/report/merge-chart.js';
import type { SpaceMerges } from '../../src/report/types.js';
import { svgElements } from './svg.js';

const space = (id: number, cross: number, same: number, kind = 'plain'): SpaceMerges => ({
  id,
  width: cross + same,
  kind,
  crossModelMerges: cross,
  sameModelMerges: same,
});

/*
 * Hand-computed layout. The plot area is x 64..810, y 24..268 (viewBox 960 × 320).
 * y: totals 16 and 64 → nice 0..80 (step 20), so y(v) = 268 - v * 244 / 80 = 268 - 3.05 v.
 * x: two bands of (810 - 64) / 2 = 373 px; bars 36 px wide (the cap; 0.7 × 373 is more),
 *    centred at 64 + 186.5 = 250.5 and 623.5, so they start at 232.5 and 605.5.
 */
describe('renderMergeChart', () => {
  it('stacks same-model merges on cross-model ones, heights in proportion', () => {
    const svg = renderMergeChart([space(1, 14, 2, 'residual'), space(2, 56, 8)]);
    const bars = svgElements(svg, 'rect').filter((r) => r.attrs['data-series']);
    assert.deepEqual(
      bars.map((r) => [
        r.attrs['data-space'],
        r.attrs['data-series'],
        r.attrs['data-value'],
        r.attrs['x'],
        r.attrs['y'],
        r.attrs['width'],
        r.attrs['height'],
      ]),
      [
        ['1', 'cross', '14', '232.5', '225.3', '36', '42.7'],
        ['1', 'same', '2', '232.5', '219.2', '36', '6.1'],
        ['2', 'cross', '56', '605.5', '97.2', '36', '170.8'],
        ['2', 'same', '8', '605.5', '72.8', '36', '24.4'],
      ],
    );
    // The y axis: 0, 20, ..., 80.
    const axisText = svgElements(
      svg.slice(svg.indexOf('class="axes"'), svg.indexOf('</g>')),
      'text',
    );
    assert.deepEqual(
      axisText.map((t) => t.text),
      ['0', '20', '40', '60', '80'],
    );
  });

  it('labels ids under the bars (residual ones bold) and shares above them', () => {
    const svg = renderMergeChart([space(1, 14, 2, 'residual'), space(2, 56, 8)]);
    const texts = svgElements(svg, 'text');
    const ids = texts.filter((t) => t.attrs['y'] === '284'); // 268 + 16
    assert.deepEqual(
      ids.map((t) => [t.text, t.attrs['x'], t.attrs['font-weight']]),
      [
        ['1', '250.5', '700'],
        ['2', '623.5', undefined],
      ],
    );
    const shares = texts.filter((t) => t.attrs['class'] === 'share');
    // 14 / 16 = 87.5 % and 56 / 64 = 87.5 %, 5 px above each bar's top.
    assert.deepEqual(
      shares.map((t) => [t.text, t.attrs['data-value'], t.attrs['y']]),
      [
        ['88%', '0.875', '214.2'],
        ['88%', '0.875', '67.8'],
      ],
    );
    assert.match(
      svg,
      /<title>space 1 \(residual, 16 features per model\): 14 cross-model, 2 same-model merges \(87\.5% cross-model\)<\/title>/,
    );
  });

  it('thins labels on many spaces: every second id past 32, no shares past 24', () => {
    const spaces = Array.from({ length: 40 }, (_, i) => space(i + 1, 10, 2));
    const svg = renderMergeChart(spaces);
    const texts = svgElements(svg, 'text');
    assert.equal(texts.filter((t) => t.attrs['class'] === 'share').length, 0);
    const ids = texts.filter((t) => t.attrs['y'] === '284').map((t) => t.text);
    assert.deepEqual(
      ids,
      Array.from({ length: 20 }, (_, i) => String(2 * i + 1)),
    );
    assert.equal(svgElements(svg, 'rect').filter((r) => r.attrs['data-series']).length, 80);
  });

  it('draws a count that is not finite as no bar, but keeps it in data-value', () => {
    const svg = renderMergeChart([space(1, Number.NaN, 4)]);
    const [cross, same] = svgElements(svg, 'rect').filter((r) => r.attrs['data-series']);
    assert.equal(cross?.attrs['data-value'], 'NaN');
    assert.equal(cross?.attrs['height'], '0');
    assert.equal(same?.attrs['data-value'], '4');
    assert.doesNotMatch(
      svg.replace(/data-value="NaN"/g, '').replace(/<title>[^<]*<\/title>/g, ''),
      /NaN/,
    );
  });
});
