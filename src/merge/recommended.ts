/**
 * @file The two procedures a merge can follow: the paper's, and what `zipit` does unless told
 * otherwise (the levers measured best in docs/RESULTS.md, "Beyond the reference").
 *
 * `MergeOptions` leaves every lever at the paper's setting, so that a library call without
 * options reproduces the paper and the reference implementation. The CLI's defaults are
 * {@link RECOMMENDED_MERGE}; spread it into `MergeOptions` to get them from the library.
 */
import type { HeadRule } from './class-head.js';
import type { LogitRule } from './logits.js';

/** The settings that differ between the two procedures. */
export interface MergeProcedure {
  readonly match: { readonly alpha: number; readonly beta: number };
  readonly resetSources: boolean;
  readonly head: HeadRule;
  readonly logits: LogitRule;
}

/** The paper's ZipIt!: the reference's alpha/beta, sources as given, averaged head, raw logits. */
export const PAPER_MERGE: MergeProcedure = {
  match: { alpha: 0.3, beta: 0.125 },
  resetSources: false,
  head: 'average',
  logits: 'raw',
};

/**
 * zipit's defaults: the sources' BatchNorm reset on the merge data (as the reference's scripts
 * do), class-aware heads when the trained classes are known, logits standardised on the merge
 * data, and alpha 0.5 / beta 1: the reference's own choice on the tuning pair (PyTorch pair 0,
 * its grid alpha 0.3-1 x beta 0.125-1). With the other defaults on, that pair's grid is flat
 * for beta >= 0.5 (66.7-67.2 joint); its best point there, (0.5, 0.5), fell to 34.1 on a
 * held-out pair, beta 1 did not (docs/RESULTS.md).
 */
export const RECOMMENDED_MERGE: MergeProcedure = {
  match: { alpha: 0.5, beta: 1 },
  resetSources: true,
  head: 'auto',
  logits: 'standardize',
};
