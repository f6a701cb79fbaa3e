/** @file The SVG chart engine: nice scales against hand-computed ticks, pixel maps, axes, marker dodging. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
} from '../../src/report/chart.js';
import { svgElements } from './svg.js';

describe('niceScale', () => {
  it('picks a 1, 2, 2.5 or 5 × 10^k step and round end ticks (hand-computed)', () => {
    // 64 / 5 = 12.8 per tick → step 20; [0, 64] → 0..80.
    assert.deepEqual(niceScale(0, 64, 5), { lo: 0, hi: 80, ticks: [0, 20, 40, 60, 80] });
    // (65.9M - 32.6M) / 6 = 5.55M → step 10M; floor(3.26) = 3, ceil(6.59) = 7.
    assert.deepEqual(niceScale(32.6e6, 65.9e6, 6), {
      lo: 30e6,
      hi: 70e6,
      ticks: [30e6, 40e6, 50e6, 60e6, 70e6],
    });
    // 34 / 6 = 5.67 → step 10; 48..82 → 40..90.
    assert.deepEqual(niceScale(48, 82, 6).ticks, [40, 50, 60, 70, 80, 90]);
    // 1 / 4 = 0.25 is itself a nice step (2.5 × 10^-1).
    assert.deepEqual(niceScale(0, 1, 4).ticks, [0, 0.25, 0.5, 0.75, 1]);
    // A range across zero: 10 / 5 = 2 → step 2; floor(-3.5) = -4, ceil(1.5) = 2.
    assert.deepEqual(niceScale(-7, 3, 5), { lo: -8, hi: 4, ticks: [-8, -6, -4, -2, 0, 2, 4] });
  });

  it('prints ticks without floating-point noise (3 × 0.1 is the tick 0.3)', () => {
    assert.deepEqual(niceScale(0, 0.3, 3).ticks, [0, 0.1, 0.2, 0.3]);
    assert.deepEqual(niceScale(0.07, 0.13, 6).ticks, [0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13]);
  });

  it('widens a degenerate range so nothing divides by zero', () => {
    // One value: ±10 % of it. 5 → [4.5, 5.5], step 0.25.
    assert.deepEqual(niceScale(5, 5, 4), { lo: 4.5, hi: 5.5, ticks: [4.5, 4.75, 5, 5.25, 5.5] });
    // Zero: ±1.
    assert.deepEqual(niceScale(0, 0, 4), { lo: -1, hi: 1, ticks: [-1, -0.5, 0, 0.5, 1] });
    // No data (Math.min of nothing is Infinity): [0, 1].
    assert.deepEqual(niceScale(Infinity, -Infinity, 6), {
      lo: 0,
      hi: 1,
      ticks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    });
  });

  it('covers the data with evenly spaced ticks, about the target count (seeded ranges)', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let trial = 0; trial < 500; trial++) {
      const magnitude = 10 ** Math.floor(random() * 12 - 4);
      const min = (random() - 0.3) * magnitude;
      const max = min + random() * magnitude + 1e-9 * magnitude;
      const target = 3 + Math.floor(random() * 6);
      const scale = niceScale(min, max, target);
      const where = `niceScale(${min}, ${max}, ${target}) = ${JSON.stringify(scale)}`;
      assert.ok(scale.lo <= min && scale.hi >= max, `${where}: does not cover the data`);
      assert.equal(scale.ticks[0], Number(scale.lo.toPrecision(12)), where);
      assert.equal(scale.ticks.at(-1), Number(scale.hi.toPrecision(12)), where);
      // With a step ≥ the raw step, at most target + 2 intervals; with a step ≤ 2.5 × raw, at
      // least target / 2.5 of them.
      const intervals = scale.ticks.length - 1;
      assert.ok(intervals >= target / 2.5 && intervals <= target + 2, `${where}: ${intervals}`);
      const step = (scale.hi - scale.lo) / intervals;
      const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      assert.ok(
        [1, 2, 2.5, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6),
        `${where}: step ${step}`,
      );
      for (const [i, tick] of scale.ticks.entries()) {
        assert.ok(Math.abs(tick - (scale.lo + i * step)) <= 1e-9 * Math.abs(step) * 1e3, where);
      }
    }
  });
});

describe('pixelMap', () => {
  it('maps the ends of the scale onto the ends of the range, linearly between', () => {
    const scale = niceScale(0, 64, 5); // 0..80
    const y = pixelMap(scale, 268, 24); // a y axis: bottom first
    assert.equal(y(0), 268);
    assert.equal(y(80), 24);
    assert.equal(y(20), 268 - 244 / 4);
    assert.equal(y(40), 146);
    const x = pixelMap(niceScale(1e6, 2e6, 6), 64, 770);
    assert.equal(x(1e6), 64);
    assert.equal(x(2e6), 770);
    assert.equal(x(1.5e6), 417);
  });
});

const PLOT: PlotArea = { left: 64, right: 770, top: 20, bottom: 368 };

describe('axes', () => {
  const yScale = niceScale(48, 82, 6); // ticks 40..90
  const y = { scale: yScale, at: pixelMap(yScale, PLOT.bottom, PLOT.top), label: String };

  it('draws a grid line and a label per tick and the two axis lines', () => {
    const xScale = niceScale(1e6, 2e6, 6); // ticks 1.0M..2.0M by 0.2M
    const svg = axes(
      PLOT,
      { scale: xScale, at: pixelMap(xScale, PLOT.left, PLOT.right), label: (v) => `${v / 1e6}M` },
      y,
    );
    const lines = svgElements(svg, 'line');
    assert.equal(lines.length, 6 + 6 + 2);
    const texts = svgElements(svg, 'text');
    assert.deepEqual(
      texts.map((t) => t.text),
      ['40', '50', '60', '70', '80', '90', '1M', '1.2M', '1.4M', '1.6M', '1.8M', '2M'],
    );
    // y tick 50 at 368 - (10 / 50) * 348 = 298.4; its label 4 px lower to sit centred.
    const fifty = texts.find((t) => t.text === '50');
    assert.deepEqual([fifty?.attrs['x'], fifty?.attrs['y']], ['56', '302.4']);
    // x tick 1.4M at 64 + 0.4 * 706 = 346.4, a vertical grid line from top to bottom.
    assert.ok(
      lines.some(
        (l) =>
          l.attrs['x1'] === '346.4' &&
          l.attrs['x2'] === '346.4' &&
          l.attrs['y1'] === '20' &&
          l.attrs['y2'] === '368',
      ),
    );
    // The axis lines: left edge and bottom edge of the plot area.
    assert.deepEqual(
      lines.slice(-2).map((l) => [l.attrs['x1'], l.attrs['x2'], l.attrs['y1'], l.attrs['y2']]),
      [
        ['64', '64', '20', '368'],
        ['64', '770', '368', '368'],
      ],
    );
  });

  it('draws no x ticks for a band axis', () => {
    const svg = axes(PLOT, undefined, y);
    assert.equal(svgElements(svg, 'line').length, 6 + 2);
    assert.equal(svgElements(svg, 'text').length, 6);
  });

  it('escapes labels and titles', () => {
    const svg = axes(PLOT, undefined, { ...y, label: () => '<b>' });
    assert.ok(!svg.includes('<b>') && svg.includes('&lt;b&gt;'));
    const titles = svgElements(axisTitles(PLOT, 'x & y', 'Accuracy (%)'), 'text');
    assert.deepEqual(
      titles.map((t) => [t.text, t.attrs['class']]),
      [
        ['x &amp; y', 'axis-title'],
        ['Accuracy (%)', 'axis-title'],
      ],
    );
    // Centred under the plot and left of it: (64 + 770) / 2 = 417, (20 + 368) / 2 = 194.
    assert.equal(titles[0]?.attrs['x'], '417');
    assert.equal(titles[1]?.attrs['transform'], 'translate(18,194) rotate(-90)');
  });
});

describe('dodge', () => {
  it('leaves a mark clear of everything where it is', () => {
    assert.deepEqual(dodge([{ x: 100, ys: [50] }], [{ x: 100, ys: [80] }]), [0]);
    assert.deepEqual(dodge([{ x: 100, ys: [50] }], [{ x: 112, ys: [50] }]), [0]);
  });

  it('moves a clashing mark by whole gaps: right, then left, then further', () => {
    // On top of a fixed point: one gap (12 px) to the right.
    assert.deepEqual(dodge([{ x: 100, ys: [50, 90] }], [{ x: 100, ys: [55] }]), [12]);
    // Three marks on one spot: 0, then +12, then -12 (+12 is taken by the second).
    assert.deepEqual(
      dodge(
        [
          { x: 100, ys: [50] },
          { x: 100, ys: [50] },
          { x: 100, ys: [50] },
        ],
        [],
      ),
      [0, 12, -12],
    );
    // A fixed point to the right as well: +12 clashes with it, so -12.
    assert.deepEqual(
      dodge(
        [{ x: 100, ys: [50] }],
        [
          { x: 100, ys: [50] },
          { x: 110, ys: [52] },
        ],
      ),
      [-12],
    );
  });
});

describe('markers and coordinates', () => {
  it('fills closed shapes and strokes the open cross', () => {
    for (const shape of MARKER_SHAPES.slice(0, -1)) {
      assert.match(markerPaint(shape, '#123456'), /^fill="#123456" stroke="#fff"/);
    }
    assert.match(
      markerPaint(MARKER_SHAPES.at(-1) ?? '', '#123456'),
      /^fill="none" stroke="#123456"/,
    );
  });

  it('rounds coordinates to two decimals', () => {
    assert.equal(coord(228.79999999999998), '228.8');
    assert.equal(coord(1 / 3), '0.33');
    assert.equal(coord(-2.005), '-2');
    assert.equal(coord(12), '12');
  });
});
