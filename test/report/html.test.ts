/** @file renderReport: a self-contained page, escaped text, embedded data, and (in Chromium) charts that show the input numbers. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderReport } from '../../src/report/html.js';
import type { ReportData } from '../../src/report/types.js';

const CHROMIUM = '/usr/bin/chromium';
const HEATMAP_MODELS = 2;
const HEATMAP_WIDTH = 256; // per model: ResNet-20 x4's last stage
const HEATMAP_SIZE = HEATMAP_MODELS * HEATMAP_WIDTH;
/** A cell planted with a strong negative correlation, to check the colour's sign. */
const NEGATIVE_CELL = { row: 3, col: HEATMAP_WIDTH + 5, value: -0.9 };

/** Block-structured correlations like a real space: 1 on the diagonal, weaker across models. */
function sampleCorrelation(): number[] {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const values = new Array<number>(HEATMAP_SIZE * HEATMAP_SIZE).fill(0);
  for (let i = 0; i < HEATMAP_SIZE; i++) {
    for (let j = i; j < HEATMAP_SIZE; j++) {
      const sameModel = Math.floor(i / HEATMAP_WIDTH) === Math.floor(j / HEATMAP_WIDTH);
      let v = i === j ? 1 : (random() - 0.5) * (sameModel ? 0.5 : 0.3);
      // Each feature has a partner in the other model, as matching finds.
      if (!sameModel && (j - i) % HEATMAP_WIDTH === 0) v = 0.4 + 0.5 * random();
      values[i * HEATMAP_SIZE + j] = v;
      values[j * HEATMAP_SIZE + i] = v;
    }
  }
  values[NEGATIVE_CELL.row * HEATMAP_SIZE + NEGATIVE_CELL.col] = NEGATIVE_CELL.value;
  values[NEGATIVE_CELL.col * HEATMAP_SIZE + NEGATIVE_CELL.row] = NEGATIVE_CELL.value;
  values[7 * HEATMAP_SIZE + 9] = Number.NaN; // a dead channel
  return values;
}

const MODEL_FLOPS = 652_460_032; // ResNet-20 x4 on 32x32, multiply-accumulates per image

const sample: ReportData = {
  title: 'cifar10 5+5: <script>alert("x")</script> & resnet20x4_a.onnx',
  subtitle: 'zipit eval --stop-at 13 a.onnx b.onnx (8 threads, AMD EPYC 7B13)',
  tasks: [
    { name: 'Task A', classes: [0, 1, 2, 3, 4] },
    { name: 'Task B', classes: [5, 6, 7, 9, 8] },
  ],
  rows: [
    { method: 'Model A', joint: 0.4712, tasks: [0.9431, 0.2034], avg: 0.57325, flops: MODEL_FLOPS },
    { method: 'Model B', joint: 0.4688, tasks: [0.1987, 0.9512], avg: 0.57495, flops: MODEL_FLOPS },
    {
      method: 'W.Avg',
      joint: 0.4301,
      tasks: [0.6123, 0.5871],
      avg: 0.5997,
      flops: MODEL_FLOPS,
      std: { joint: 0.0213, tasks: [0.03, 0.041], avg: 0.0185 },
    },
    {
      method: 'Permute',
      joint: 0.5843,
      tasks: [0.7712, 0.7623],
      avg: 0.76675,
      flops: MODEL_FLOPS,
      params: 'identity init',
    },
    {
      method: 'ZipIt!20/20',
      joint: 0.7914,
      tasks: [0.8856, 0.8791],
      avg: 0.88235,
      flops: MODEL_FLOPS,
      params: 'alpha 0.5, beta 0.5',
      std: { joint: 0.012, tasks: [0.0081, 0.0094], avg: 0.007 },
    },
    {
      method: 'ZipIt!13/20',
      joint: 0.8376,
      tasks: [0.9122, 0.9047],
      avg: 0.90845,
      flops: 1_042_917_376,
      params: 'alpha 0.5, beta 0.5',
    },
    {
      method: 'Ensemble',
      joint: 0.8741,
      tasks: [0.9431, 0.9512],
      avg: 0.94715,
      flops: 2 * MODEL_FLOPS,
    },
  ],
  curve: [
    { label: '20/20', zipped: 20, total: 20, joint: 0.7914, avg: 0.88235, flops: MODEL_FLOPS },
    { label: '16/20', zipped: 16, total: 20, joint: 0.8102, avg: 0.8931, flops: 850_000_000 },
    { label: '13/20', zipped: 13, total: 20, joint: 0.8376, avg: 0.90845, flops: 1_042_917_376 },
    { label: '7/20', zipped: 7, total: 20, joint: 0.8613, avg: 0.9302, flops: 1_180_000_000 },
    { label: '1/20', zipped: 1, total: 20, joint: 0.8735, avg: 0.9455, flops: 1_301_000_000 },
  ],
  markers: [
    { label: 'Ensemble', joint: 0.8741, avg: 0.94715, flops: 2 * MODEL_FLOPS },
    { label: 'Model A', joint: 0.4712, avg: 0.57325, flops: MODEL_FLOPS },
    { label: 'Model B', joint: 0.4688, avg: 0.57495, flops: MODEL_FLOPS },
  ],
  spaces: [
    ...[64, 64, 64, 128, 128, 128, 256, 256, 256].map((width, i) => ({
      id: i + 1,
      width,
      kind: i % 3 === 0 ? 'residual' : 'plain',
      crossModelMerges: Math.round(width * (0.9 - 0.07 * i)),
      sameModelMerges: width - Math.round(width * (0.9 - 0.07 * i)),
    })),
    { id: 11, width: 10, kind: 'plain', crossModelMerges: 10, sameModelMerges: 0 },
  ],
  heatmap: {
    spaceId: 9,
    size: HEATMAP_SIZE,
    values: sampleCorrelation(),
    numModels: HEATMAP_MODELS,
  },
};

const html = renderReport(sample);

function scriptText(page: string, id: string): string {
  const match = new RegExp(`<script[^>]* id="${id}"[^>]*>([^<]*)</script>`).exec(page);
  assert.ok(match, `no <script id="${id}"> in the page`);
  return match[1] ?? '';
}

describe('renderReport (string level)', () => {
  it('is self-contained: no remote URL, no external resource', () => {
    assert.doesNotMatch(html, /https?:\/\//);
    assert.doesNotMatch(html, /\/\/[a-z0-9.-]+\.[a-z]{2,}\//i, 'protocol-relative URL');
    assert.doesNotMatch(html, /<link\b/i);
    assert.doesNotMatch(html, /<(?:img|script|iframe|embed|source|audio|video)\b[^>]*\ssrc=/i);
    assert.doesNotMatch(html, /@import|url\((?!#)/i, 'CSS must not load anything');
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  });

  it('escapes a title holding markup', () => {
    assert.ok(!html.includes('<script>alert'), 'raw <script> from the title');
    assert.ok(
      html.includes('cifar10 5+5: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;'),
    );
    // In the JSON copy, `<` is escaped so the title cannot close the element.
    const scripts = html.match(/<script\b/g) ?? [];
    const closes = html.match(/<\/script>/g) ?? [];
    assert.equal(scripts.length, closes.length);
    assert.equal(scripts.length, 3, 'report-data, heatmap-values and the painter');
  });

  it('embeds the data as JSON, the heat map as bytes within 1/254', () => {
    const embedded = JSON.parse(scriptText(html, 'report-data')) as ReportData;
    const { heatmap, ...rest } = sample;
    assert.deepEqual({ ...embedded, heatmap: undefined }, { ...rest, heatmap: undefined });
    assert.deepEqual(embedded.heatmap, { spaceId: 9, size: HEATMAP_SIZE, numModels: 2 });
    const bytes = Buffer.from(scriptText(html, 'heatmap-values'), 'base64');
    assert.equal(bytes.length, HEATMAP_SIZE * HEATMAP_SIZE);
    const codes = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    let worst = 0;
    for (const [i, v] of Array.from(heatmap?.values ?? []).entries()) {
      const code = codes[i] ?? Number.NaN;
      if (Number.isNaN(v)) assert.equal(code, -128, `NaN at ${i}`);
      else worst = Math.max(worst, Math.abs(code / 127 - v));
    }
    assert.ok(worst <= 0.5 / 127 + 1e-12, `worst quantisation error ${worst}`);
  });

  it('stays small: a 512 x 512 heat map costs about 350 kB', () => {
    assert.ok(html.length < 450_000, `${html.length} characters`);
  });

  it('renders minimal data (no optional parts) without charts', () => {
    const page = renderReport({ title: 't', tasks: [], rows: [] });
    assert.match(page, /No results\./);
    assert.doesNotMatch(page, /<svg|<canvas|<script>/);
  });

  it('EXPECTED FAILURE - a heat map whose values are not size*size throws', () => {
    assert.throws(
      () =>
        renderReport({
          title: 't',
          tasks: [],
          rows: [],
          heatmap: { spaceId: 0, size: 4, values: [1, 0, 0, 1], numModels: 2 },
        }),
      /Expected heatmap\.values to hold size \* size = 16 numbers, got 4/,
    );
    assert.throws(
      () =>
        renderReport({
          title: 't',
          tasks: [],
          rows: [],
          heatmap: { spaceId: 0, size: 3, values: new Array<number>(9).fill(0), numModels: 2 },
        }),
      /Expected heatmap\.numModels to be a positive divisor of size 3, got 2/,
    );
  });
});

/** Parses `40.6M` / `1.23G` back to a count, with half a unit of its last digit. */
function parseFlops(text: string): { value: number; tolerance: number } {
  const match = /^(\d+)(?:\.(\d+))?([KMG]?)$/.exec(text);
  assert.ok(match, `FLOPs cell ${JSON.stringify(text)}`);
  const scale = { '': 1, K: 1e3, M: 1e6, G: 1e9 }[match[3] as '' | 'K' | 'M' | 'G'];
  const decimals = (match[2] ?? '').length;
  return {
    value: Number(`${match[1]}.${match[2] ?? '0'}`) * scale,
    tolerance: (0.5 * scale) / 10 ** decimals,
  };
}

interface CellInfo {
  row: number;
  col: string;
  text: string;
  value: string;
  std: string | null;
}

interface MarkInfo {
  series: string;
  label: string | null;
  marker: string | null;
  value: number;
  flops: number;
  y: number;
  height: number;
  space: number | null;
}

const browserMissing = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install Chromium to run the browser checks of the report`;

describe('renderReport in headless Chromium', { skip: browserMissing }, () => {
  let browser: Browser;
  let page: Page;
  let dir: string;
  const errors: string[] = [];
  const requests: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zipit-report-'));
    const file = join(dir, 'report.html');
    await writeFile(file, html);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') {
        errors.push(`${message.type()}: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  });

  after(async () => {
    await browser?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('loads with no console errors and no request but the file itself', () => {
    assert.deepEqual(errors, []);
    assert.equal(requests.length, 1, requests.join(', '));
    assert.match(requests[0] ?? '', /^file:\/\/.*report\.html$/);
  });

  it('shows the escaped title as text', async () => {
    assert.equal(await page.locator('h1').textContent(), sample.title);
    assert.equal(await page.title(), sample.title);
  });

  it('shows the input numbers in the table', async () => {
    const cells = await page.evaluate<CellInfo[]>(`
      Array.from(document.querySelectorAll('table.results td[data-col]')).map((td) => ({
        row: Number(td.parentElement.getAttribute('data-row')),
        col: td.getAttribute('data-col'),
        text: td.textContent,
        value: td.getAttribute('data-value'),
        std: td.getAttribute('data-std'),
      }))`);
    const columns = sample.tasks.length + 3;
    assert.equal(cells.length, sample.rows.length * columns);
    for (const cell of cells) {
      const row = sample.rows[cell.row];
      assert.ok(row, `row ${cell.row}`);
      const where = `${row.method} / ${cell.col}`;
      if (cell.col === 'flops') {
        assert.equal(Number(cell.value), row.flops, where);
        const shown = parseFlops(cell.text);
        assert.ok(Math.abs(shown.value - row.flops) <= shown.tolerance, `${where}: ${cell.text}`);
        continue;
      }
      const task = /^task-(\d+)$/.exec(cell.col);
      const k = task ? Number(task[1]) : -1;
      const expected = k >= 0 ? row.tasks[k] : cell.col === 'joint' ? row.joint : row.avg;
      const expectedStd = k >= 0 ? row.std?.tasks[k] : row.std?.[cell.col as 'joint' | 'avg'];
      assert.equal(Number(cell.value), expected, `${where}: data-value`);
      const match = /^(\d+\.\d)(?: ± (\d+\.\d))?$/.exec(cell.text);
      assert.ok(match, `${where}: cell text ${JSON.stringify(cell.text)}`);
      assert.ok(Math.abs(Number(match[1]) - (expected ?? Number.NaN) * 100) <= 0.05 + 1e-9, where);
      if (expectedStd === undefined) {
        assert.equal(match[2], undefined, `${where}: unexpected ±`);
        assert.equal(cell.std, null, where);
      } else {
        assert.equal(Number(cell.std), expectedStd, `${where}: data-std`);
        assert.ok(Math.abs(Number(match[2]) - expectedStd * 100) <= 0.05 + 1e-9, `${where}: ±`);
      }
    }
    const methods = await page.locator('table.results td.method').allTextContents();
    assert.deepEqual(
      methods,
      sample.rows.map((r) => r.method),
    );
  });

  /** Every chart mark with its data attributes and its drawn position. */
  async function marks(selector: string): Promise<MarkInfo[]> {
    return page.evaluate<MarkInfo[]>(`
      Array.from(document.querySelectorAll(${JSON.stringify(selector)})).map((el) => {
        const box = el.getBoundingClientRect();
        return {
          series: el.getAttribute('data-series'),
          label: el.getAttribute('data-label'),
          marker: el.getAttribute('data-marker'),
          value: Number(el.getAttribute('data-value')),
          flops: Number(el.getAttribute('data-flops')),
          space: el.hasAttribute('data-space') ? Number(el.getAttribute('data-space')) : null,
          y: box.top + box.height / 2,
          height: box.height,
        };
      })`);
  }

  it('draws the partial-zipping curve and the reference markers', async () => {
    const curve = sample.curve ?? [];
    const points = await marks('#curve-chart circle[data-series]');
    assert.equal(points.length, 2 * curve.length);
    for (const series of ['joint', 'avg'] as const) {
      const drawn = points.filter((p) => p.series === series);
      assert.deepEqual(
        drawn.map((p) => [p.label, p.value, p.flops]),
        curve.map((p) => [p.label, p[series], p.flops]),
        series,
      );
      // Higher accuracy is drawn higher: screen y falls as the value rises.
      const byValue = [...drawn].sort((a, b) => a.value - b.value);
      for (const [i, point] of byValue.entries()) {
        const below = byValue[i - 1];
        if (below) assert.ok(point.y < below.y, `${series} point ${i} is not above`);
      }
    }
    const markers = await marks('#curve-chart path[data-marker]');
    assert.equal(markers.length, 2 * (sample.markers ?? []).length);
    for (const m of markers) {
      const source = sample.markers?.[Number(m.marker)];
      assert.ok(source);
      assert.equal(m.label, source.label);
      assert.equal(m.value, m.series === 'joint' ? source.joint : source.avg);
      assert.equal(m.flops, source.flops);
    }
    const titles = await page.locator('#curve-chart .axis-title').allTextContents();
    assert.deepEqual(titles, ['Multiply-accumulates per image', 'Accuracy (%)']);
  });

  it('draws one stacked bar pair per space, heights in proportion', async () => {
    const spaces = sample.spaces ?? [];
    const bars = await marks('#merge-chart rect[data-series]');
    assert.equal(bars.length, 2 * spaces.length);
    const pixelsPerMerge = (bars[0]?.height ?? 0) / (spaces[0]?.crossModelMerges ?? 1);
    assert.ok(pixelsPerMerge > 0);
    for (const s of spaces) {
      for (const series of ['cross', 'same'] as const) {
        const bar = bars.find((b) => b.space === s.id && b.series === series);
        const expected = series === 'cross' ? s.crossModelMerges : s.sameModelMerges;
        assert.ok(bar, `space ${s.id} ${series}`);
        assert.equal(bar.value, expected);
        assert.ok(Math.abs(bar.height - expected * pixelsPerMerge) < 1, `space ${s.id} ${series}`);
      }
    }
  });

  it('paints the heat map with the colours of its values', async () => {
    const painted = await page.evaluate<{
      flag: string | null;
      width: number;
      coloured: number;
      diagonal: number[];
      negative: number[];
      nan: number[];
    }>(`(() => {
      const canvas = document.getElementById('heatmap');
      const context = canvas.getContext('2d');
      const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
      let coloured = 0;
      for (let p = 0; p < data.length; p += 4) {
        if (data[p + 3] === 255 && !(data[p] > 240 && data[p + 1] > 240 && data[p + 2] > 240)) coloured++;
      }
      const at = (row, col) => Array.from(context.getImageData(col, row, 1, 1).data);
      return {
        flag: canvas.getAttribute('data-painted'),
        width: canvas.width,
        coloured,
        diagonal: at(0, 0),
        negative: at(${NEGATIVE_CELL.row}, ${NEGATIVE_CELL.col}),
        nan: at(7, 9),
      };
    })()`);
    assert.equal(painted.flag, 'true');
    assert.equal(painted.width, HEATMAP_SIZE);
    // Off-diagonal values near 0 are near white; the diagonal and partners are not.
    assert.ok(painted.coloured > HEATMAP_SIZE * 2, `${painted.coloured} coloured pixels`);
    const [r0 = 0, , b0 = 255] = painted.diagonal;
    assert.ok(r0 > 150 && b0 < 80, `correlation 1 is red, got ${painted.diagonal}`);
    const [r1 = 255, , b1 = 0] = painted.negative;
    assert.ok(b1 > 150 && r1 < 90, `correlation -0.9 is blue, got ${painted.negative}`);
    assert.deepEqual(painted.nan, [200, 203, 208, 255], 'NaN is grey');
    assert.equal(
      await page.locator('#correlation .block-boundary').count(),
      2 * (HEATMAP_MODELS - 1),
    );
  });

  it('reads a correlation out under the pointer', async () => {
    await page.locator('#heatmap').scrollIntoViewIfNeeded();
    const box = await page.locator('#heatmap').boundingBox();
    assert.ok(box);
    await page.mouse.move(box.x + 0.3, box.y + 0.3);
    assert.equal(
      await page.locator('#heatmap-readout').textContent(),
      'row 0 (model 1, feature 0) × column 0 (model 1, feature 0): 1.00',
    );
    // Elsewhere the cell under the pointer depends on rounding; check the value shown for it.
    const values = sample.heatmap?.values ?? [];
    for (const [fx, fy] of [
      [0.9, 0.1],
      [0.3, 0.7],
      [0.55, 0.52],
    ] as const) {
      await page.mouse.move(box.x + fx * box.width, box.y + fy * box.height);
      const text = (await page.locator('#heatmap-readout').textContent()) ?? '';
      const match =
        /^row (\d+) \(model (\d), feature (\d+)\) × column (\d+) \(model (\d), feature (\d+)\): (-?\d\.\d\d)$/.exec(
          text,
        );
      assert.ok(match, text);
      const [row = -1, rowModel = 0, rowFeature, col = -1, colModel = 0, colFeature, shown] = match
        .slice(1)
        .map(Number);
      assert.ok(
        Math.abs(row - fy * HEATMAP_SIZE) <= 1.5 && Math.abs(col - fx * HEATMAP_SIZE) <= 1.5,
        text,
      );
      assert.equal(rowModel - 1, Math.floor(row / HEATMAP_WIDTH), text);
      assert.equal(colFeature, col % HEATMAP_WIDTH, text);
      assert.equal(rowFeature, row % HEATMAP_WIDTH, text);
      assert.equal(colModel - 1, Math.floor(col / HEATMAP_WIDTH), text);
      const value = values[row * HEATMAP_SIZE + col] ?? Number.NaN;
      assert.equal(shown, Number((Math.round(value * 127) / 127).toFixed(2)), text);
    }
  });

  it('fits the page width (no horizontal scroll at 1100 px)', async () => {
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    );
    assert.equal(overflow, 0);
    // Set REPORT_SCREENSHOT=/tmp/report.png to look at the page.
    const shot = process.env['REPORT_SCREENSHOT'];
    if (shot !== undefined && shot !== '') await page.screenshot({ path: shot, fullPage: true });
  });
});
