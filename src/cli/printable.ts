/** @file Making text from files and arguments safe to print: one line, no terminal control. */

/** Control characters (C0, DEL, C1) and the bidirectional overrides that reorder a line on screen. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` with every control character written as an escape (`\n`, `\x1b`, `\u202e`), so that a
 * node name, op type or file name taken from a model or the command line can neither break a
 * message into several lines, forge a line of ours ("zipit: ok"), nor send escape codes to the
 * terminal.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
