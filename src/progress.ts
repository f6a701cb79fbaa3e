/** @file The progress-callback contract between long library operations and the CLI's bars. */

/** One progress report: `done` of `total` units in a named phase, with optional live figures. */
export interface ProgressEvent {
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  /** Extra figures to show beside the bar (e.g. loss, accuracy, images/s). */
  readonly info?: Readonly<Record<string, number | string>>;
}

/** Receives progress; library code calls it, only the CLI draws it. */
export type ProgressListener = (event: ProgressEvent) => void;
