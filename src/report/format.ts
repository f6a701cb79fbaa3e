/** @file Text for the report page: escaping, percentages, FLOPs with K/M/G, class lists, exact numbers as attributes. */

/**
 * Formats an accuracy fraction as a percentage with one decimal (`0.8375` → `83.8`), or `—`
 * when it is not a finite number.
 */
export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? (fraction * 100).toFixed(1) : '—';
}

/**
 * Formats a count of multiply-accumulates with a K/M/G suffix (`40_560_000` → `40.6M`,
 * `1_234_000_000` → `1.23G`), or `—` when it is not a finite number.
 */
export function formatFlops(flops: number): string {
  if (!Number.isFinite(flops)) return '—';
  const abs = Math.abs(flops);
  // The second test keeps 999.96M from printing as "1000.0M".
  if (abs >= 1e9 || (abs / 1e6).toFixed(1) === '1000.0') return `${(flops / 1e9).toFixed(2)}G`;
  if (abs >= 1e6 || (abs / 1e3).toFixed(1) === '1000.0') return `${(flops / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${(flops / 1e3).toFixed(1)}K`;
  return String(Math.round(flops));
}

/** {@link formatFlops} for an axis tick, without padding zeros: `600.0M` → `600M`, `1.20G` → `1.2G`. */
export function formatTick(flops: number): string {
  return formatFlops(flops)
    .replace(/(\.\d*?)0+(?=[KMG]?$)/, '$1')
    .replace(/\.(?=[KMG]?$)/, '');
}

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/** The exact number as an attribute (`String` round-trips a double), so tests can compare. */
export function numberAttr(v: number): string {
  return String(v);
}

/** `text` cut to at most `max` characters, the last one an ellipsis when it was cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}\u2026`;
}

/** JSON safe inside a `<script>` element: `<` escaped so no text can close the element. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Sorted, de-duplicated, consecutive runs joined: `[4, 0, 1, 2, 9]` → `0–2, 4, 9`. */
export function formatClasses(classes: readonly number[]): string {
  const sorted = [...new Set(classes)].sort((a, b) => a - b);
  const runs: string[] = [];
  let start: number | undefined;
  let previous: number | undefined;
  for (const c of [...sorted, Number.NaN]) {
    if (start !== undefined && previous !== undefined && c === previous + 1) {
      previous = c;
      continue;
    }
    if (start !== undefined && previous !== undefined) {
      runs.push(previous === start ? String(start) : `${start}\u2013${previous}`);
    }
    start = c;
    previous = c;
  }
  return runs.join(', ');
}
