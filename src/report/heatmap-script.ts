/**
 * @file The browser code that paints the correlation heat map, kept as a string.
 *
 * It runs in the viewer's browser, not in Node: the page carries it inline (no fetch, no
 * bundler). A string rather than a function's `toString()`, because the compilers between this
 * source and the page (tsc for dist/, tsx/esbuild under test) may rewrite a function's text,
 * e.g. with `__name(...)` helpers that do not exist in the page. The browser test in
 * test/report/html.test.ts runs it.
 */

/**
 * Paints `#heatmap` from `#heatmap-values` and shows the value under the pointer. Plain ES5 so
 * any browser that opens the file runs it; it reads everything from the DOM (`data-size`,
 * `data-num-models`, `data-stops`, `data-scale`, `data-nan`), so no value is spliced into code.
 */
export const HEATMAP_SCRIPT = `
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
