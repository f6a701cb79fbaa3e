/** @file Test helper: the elements of one tag in an SVG string, with their attributes and leading text. */

/** One element: its attributes (raw, still escaped) and the text before its first child. */
export interface SvgElement {
  readonly attrs: Readonly<Record<string, string>>;
  readonly text: string;
}

/**
 * Every `<tag ...>` in `svg`, in document order. Enough for the markup our renderers write
 * (double-quoted attributes, no `>` inside them); not a general parser.
 */
export function svgElements(svg: string, tag: string): SvgElement[] {
  const elements: SvgElement[] = [];
  for (const match of svg.matchAll(new RegExp(`<${tag}\\b([^>]*?)\\s*/?>([^<]*)`, 'g'))) {
    const attrs: Record<string, string> = {};
    for (const [, name, value] of (match[1] ?? '').matchAll(/([\w:-]+)="([^"]*)"/g)) {
      if (name !== undefined) attrs[name] = value ?? '';
    }
    elements.push({ attrs, text: match[2] ?? '' });
  }
  return elements;
}
