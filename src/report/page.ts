/** @file The report's HTML document: head with the no-network policy, inline CSS, heading, body. */
import { escapeHtml } from './format.js';
import { PALETTE } from './palette.js';

/**
 * One self-contained HTML document: `sections` inside `<main>`, then `scripts` (data blocks
 * and inline code) before `</body>`. Empty strings are left out, so a caller can pass an
 * optional part as `''`. The head carries a Content-Security-Policy that forbids every fetch,
 * so "no network" is a property of the file rather than a promise of the code that filled it.
 */
export function renderPage(
  title: string,
  sections: readonly string[],
  scripts: readonly string[],
): string {
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    ...sections.filter((s) => s !== ''),
    '</main>',
    ...scripts.filter((s) => s !== ''),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** The page heading, and under it `subtitle` (e.g. the command that made the numbers) if any. */
export function renderHeader(title: string, subtitle: string | undefined): string {
  const line =
    subtitle !== undefined && subtitle !== ''
      ? `<p class="subtitle">${escapeHtml(subtitle)}</p>`
      : '';
  return `<header>\n<h1>${escapeHtml(title)}</h1>\n${line}\n</header>`;
}

/** System fonts only: a web font would be a fetch (or a large inline file) for little gain. */
const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: ${PALETTE.text};
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 20px 56px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
.subtitle { margin: 0; color: ${PALETTE.muted}; overflow-wrap: anywhere;
  font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
h2 { font-size: 16px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dde3; }
ul.tasks { margin: 0 0 12px; padding-left: 18px; color: ${PALETTE.muted}; }
ul.tasks b { color: ${PALETTE.text}; font-weight: 600; }
.table-wrap { overflow-x: auto; }
table.results { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.results th, table.results td { padding: 6px 10px; text-align: right; white-space: nowrap;
  border-bottom: 1px solid #e3e6ea; }
table.results th:first-child, table.results td:first-child, table.results th.params { text-align: left; }
table.results thead th { background: #f5f7f9; font-weight: 600; border-bottom: 2px solid #d8dde3; }
table.results tbody tr:hover { background: #f0f4fa; }
table.results td.method { font-weight: 600; }
table.results td.params { text-align: left; white-space: normal; color: ${PALETTE.muted};
  font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.std { color: ${PALETTE.muted}; font-size: 12px; }
.note { color: ${PALETTE.muted}; font-size: 12.5px; margin: 6px 0 0; }
figure { margin: 0; }
figcaption { color: ${PALETTE.muted}; font-size: 12.5px; margin-top: 6px; }
svg.chart { display: block; width: 100%; height: auto; }
svg text { font-family: inherit; }
.heatmap-frame { position: relative; }
.heatmap-frame canvas { position: absolute; image-rendering: pixelated; background: #f3f4f6; }
.heatmap-frame svg { position: absolute; left: 0; top: 0; pointer-events: none; }
#heatmap-readout { display: block; min-height: 1.5em; color: ${PALETTE.muted};
  font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
`;
