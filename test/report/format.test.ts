/** @file Text helpers of the report: percentages, FLOPs, axis ticks, escaping, JSON inside a script. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  escapeHtml,
  formatClasses,
  formatFlops,
  formatPercent,
  formatTick,
  jsonForScript,
  truncate,
} from '../../src/report/format.js';

describe('report text', () => {
  it('formats percentages and FLOPs', () => {
    assert.equal(formatPercent(0.8376), '83.8');
    assert.equal(formatPercent(1), '100.0');
    assert.equal(formatPercent(Number.NaN), '—');
    assert.equal(formatFlops(40_560_000), '40.6M');
    assert.equal(formatFlops(1_234_000_000), '1.23G');
    assert.equal(formatFlops(999_960_000), '1.00G');
    assert.equal(formatFlops(12_300), '12.3K');
    assert.equal(formatFlops(512), '512');
  });

  it('formats axis ticks without padding zeros', () => {
    assert.equal(formatTick(600_000_000), '600M');
    assert.equal(formatTick(1_200_000_000), '1.2G');
    assert.equal(formatTick(1_250_000_000), '1.25G');
    assert.equal(formatTick(2_500), '2.5K');
    assert.equal(formatTick(40_000_000), '40M');
    assert.equal(formatTick(0), '0');
  });

  it('escapes markup and keeps JSON from closing its script element', () => {
    assert.equal(
      escapeHtml('<a href="x">&\'</a>'),
      '&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;',
    );
    const json = jsonForScript({ title: '</script><script>alert(1)</script>', sep: '\u2028' });
    assert.ok(!json.includes('<'));
    assert.deepEqual(JSON.parse(json), {
      title: '</script><script>alert(1)</script>',
      sep: '\u2028',
    });
  });

  it('truncates long labels with an ellipsis', () => {
    assert.equal(truncate('Ensemble', 20), 'Ensemble');
    assert.equal(truncate('resnet20x4_cifar50_a.onnx', 10), 'resnet20x\u2026');
  });

  it('lists task classes as sorted runs', () => {
    assert.equal(formatClasses([4, 0, 1, 2, 9]), '0\u20132, 4, 9');
    assert.equal(formatClasses([5, 6, 7, 9, 8, 5]), '5\u20139');
    assert.equal(formatClasses([3]), '3');
    assert.equal(formatClasses([]), '');
  });
});
