/** @file The accuracy-vs-cost chart: points, lines and markers at hand-computed coordinates, with their exact data. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderCurveChart } from '../../src/report/curve-chart.js';
import type { CurvePoint, ReportMarker } from '../../src/report/types.js';
import { svgElements } from './svg.js';

const point = (label: string, joint: number, avg: number, flops: number): CurvePoint => ({
  label,
  zipped: Number(label.split('/')[0]),
  total: 4,
  joint,
  avg,
  flops,
});

// Given out of order: the chart sorts by cost.
const CURVE = [point('1/4', 0.7, 0.8, 2e6), point('4/4', 0.5, 0.6, 1e6)];

/*
 * Hand-computed layout. The plot area is x 64..770, y 20..368 (viewBox 960 × 420).
 * x: flops 1M..2M → nice 1M..2M (step 0.2M), so x(1M) = 64, x(2M) = 770.
 * y: accuracies 50..80 % with 2 points of headroom → 48..82 → nice 40..90 (step 10), so
 *    y(v %) = 368 - (v - 40) / 50 * 348: 50 → 298.4, 60 → 228.8, 70 → 159.2, 80 → 89.6.
 */
describe('renderCurveChart', () => {
  it('places each point at its cost and accuracy', () => {
    const svg = renderCurveChart(CURVE, []);
    const circles = svgElements(svg, 'circle').filter((c) => c.attrs['data-series']);
    assert.deepEqual(
      circles.map((c) => [
        c.attrs['data-series'],
        c.attrs['data-label'],
        c.attrs['cx'],
        c.attrs['cy'],
      ]),
      [
        ['avg', '4/4', '64', '228.8'],
        ['avg', '1/4', '770', '89.6'],
        ['joint', '4/4', '64', '298.4'],
        ['joint', '1/4', '770', '159.2'],
      ],
    );
    assert.deepEqual(
      svgElements(svg, 'polyline').map((l) => l.attrs['points']),
      ['64,228.8 770,89.6', '64,298.4 770,159.2'],
    );
    // The joint points carry their labels 10 px above.
    assert.deepEqual(
      svgElements(svg, 'text')
        .filter((t) => t.attrs['class'] === 'point-label')
        .map((t) => [t.text, t.attrs['x'], t.attrs['y']]),
      [
        ['4/4', '64', '288.4'],
        ['1/4', '770', '149.2'],
      ],
    );
  });

  it('keeps the exact input numbers in data attributes and tooltips', () => {
    const svg = renderCurveChart([point('2/4', 0.83765, 0.9, 1_042_917_376)], []);
    const joint = svgElements(svg, 'circle').find((c) => c.attrs['data-series'] === 'joint');
    assert.equal(joint?.attrs['data-value'], '0.83765');
    assert.equal(joint?.attrs['data-flops'], '1042917376');
    assert.match(svg, /<title>2\/4 \(2\/4 zipped\): joint 83\.8%, 1\.04G MACs<\/title>/);
  });

  it('labels the axes with nice ticks', () => {
    const svg = renderCurveChart(CURVE, []);
    const axisText = svgElements(
      svg.slice(svg.indexOf('class="axes"'), svg.indexOf('</g>')),
      'text',
    );
    assert.deepEqual(
      axisText.map((t) => t.text),
      ['40', '50', '60', '70', '80', '90', '1M', '1.2M', '1.4M', '1.6M', '1.8M', '2M'],
    );
  });

  it('nudges a marker off a point it would cover, and keeps its exact cost', () => {
    const markers: ReportMarker[] = [
      { label: 'Model A', joint: 0.5, avg: 0.6, flops: 1e6 }, // on the point 4/4
      { label: 'Ensemble', joint: 0.75, avg: 0.85, flops: 1.5e6 }, // alone: stays
    ];
    const svg = renderCurveChart(CURVE, markers);
    const paths = svgElements(svg, 'path').filter((p) => p.attrs['data-marker'] !== undefined);
    assert.deepEqual(
      paths.map((p) => [
        p.attrs['data-marker'],
        p.attrs['data-series'],
        p.attrs['data-flops'],
        p.attrs['transform'],
      ]),
      [
        // One gap (12 px) right of x(1M) = 64.
        ['0', 'joint', '1000000', 'translate(76,298.4)'],
        ['0', 'avg', '1000000', 'translate(76,228.8)'],
        // x(1.5M) = 417; y(75) = 124.4, y(85) = 54.8.
        ['1', 'joint', '1500000', 'translate(417,124.4)'],
        ['1', 'avg', '1500000', 'translate(417,54.8)'],
      ],
    );
    // The legend names each marker once, with its shape.
    const legend = svg.slice(svg.indexOf('class="legend"'));
    assert.match(legend, /Model A<title>Model A<\/title>/);
    assert.match(legend, /Ensemble<title>Ensemble<\/title>/);
  });

  it('leaves out points that are not finite', () => {
    const svg = renderCurveChart(
      [...CURVE, point('2/4', Number.NaN, 0.7, 1.5e6)],
      [{ label: 'Broken', joint: 0.5, avg: 0.5, flops: Number.NaN }],
    );
    assert.equal(svgElements(svg, 'circle').filter((c) => c.attrs['data-series']).length, 4);
    assert.equal(svgElements(svg, 'path').filter((p) => p.attrs['data-marker']).length, 0);
    // The scales are those of the finite points alone.
    assert.match(svg, /cx="770" cy="159.2"/);
  });

  it('draws a single point without a line, and an empty chart without failing', () => {
    const one = renderCurveChart([point('4/4', 0.5, 0.6, 1e6)], []);
    assert.equal(svgElements(one, 'polyline').length, 0);
    assert.equal(svgElements(one, 'circle').filter((c) => c.attrs['data-series']).length, 2);
    const empty = renderCurveChart([], []);
    assert.doesNotMatch(empty, /NaN|Infinity/);
  });
});
