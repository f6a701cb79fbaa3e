/** @file The report's colours, shared by the page's CSS and the SVG charts so text and marks agree. */

/** Named colours: series (`joint`, `avg`, `cross`, `same`), chart furniture, and text. */
export const PALETTE = {
  joint: '#1f5fa8',
  avg: '#d9731a',
  cross: '#1f5fa8',
  same: '#e8a25e',
  grid: '#e6e9ee',
  axis: '#8a919c',
  text: '#1d2330',
  muted: '#5b6370',
  marker: '#4a505a',
} as const;
