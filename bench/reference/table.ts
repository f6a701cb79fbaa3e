/** @file The side-by-side table of bench/reference.ts, from its JSON summary (so a saved run can be re-rendered). */
import type { SideRow } from './exchange.js';

/** One side's row with the peak memory of the process that ran it. */
export interface MeasuredRow extends SideRow {
  readonly peakMiB?: number;
}

/** One table row: both sides and their difference. */
export interface ComparedRow {
  readonly method: string;
  readonly reference?: MeasuredRow;
  readonly ours?: MeasuredRow;
  /** Ours minus reference (fractions). */
  readonly diff?: { readonly joint: number; readonly tasks: readonly number[] };
  readonly oursOverReference?: number;
}

/** What `bench:reference --json` prints. */
export interface Summary {
  readonly pair: string;
  readonly files: readonly string[];
  readonly reference: string;
  readonly torch?: string;
  /** The commit (and uncommitted src/ changes) our side ran; several if src/ changed mid-run. */
  readonly oursCode?: readonly string[];
  readonly width: number;
  readonly tasks: readonly (readonly number[])[];
  readonly preprocessing: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly samples: number;
  readonly seed: number;
  readonly testImages: number;
  readonly batchSize: number;
  readonly threads: number;
  readonly alpha: number;
  readonly beta: number;
  readonly baseReset: boolean;
  /** Whether our side reset its sources too (absent in summaries from before it could). */
  readonly oursBaseReset?: boolean;
  readonly stopPoints: {
    readonly ours: Readonly<Record<string, string>>;
    readonly reference?: Readonly<Record<string, number | null>>;
  };
  readonly checkImages: number;
  readonly loadMaxAbsDiff?: readonly number[];
  readonly referenceBaseResetSeconds?: number;
  readonly oursBaseResetSeconds?: number;
  /** One plain onnxruntime pass of model A over the merge images (best of 3 per process). */
  readonly plainPassSeconds?: number;
  readonly singleProcess: boolean;
  /** Wall time of one whole `zipit merge` process with the CLI's defaults (--cli). */
  readonly cliSeconds?: number;
  readonly cliCommand?: string;
  readonly rows: readonly ComparedRow[];
}

const pct = (v: number | undefined): string => (v === undefined ? '-' : (100 * v).toFixed(1));
const signed = (v: number | undefined): string =>
  v === undefined ? '-' : `${v >= 0 ? '+' : ''}${(100 * v).toFixed(1)}`;
const sec = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1));
const mib = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(0));

/** The table with its header and footer lines. */
export function renderTable(s: Summary): string {
  const header = [
    'Method',
    'Ref joint',
    'A',
    'B',
    'Ours joint',
    'A',
    'B',
    'Δ joint',
    'Δ A',
    'Δ B',
    'Ref s',
    'Ours s',
    'ours/ref',
    'Ref MiB',
    'Ours MiB',
  ];
  const lines = s.rows.map((r) => [
    r.method,
    pct(r.reference?.joint),
    pct(r.reference?.tasks[0]),
    pct(r.reference?.tasks[1]),
    pct(r.ours?.joint),
    pct(r.ours?.tasks[0]),
    pct(r.ours?.tasks[1]),
    signed(r.diff?.joint),
    signed(r.diff?.tasks[0]),
    signed(r.diff?.tasks[1]),
    sec(r.reference?.mergeSeconds),
    sec(r.ours?.mergeSeconds),
    r.oursOverReference === undefined ? '-' : `${r.oursOverReference.toFixed(2)}x`,
    s.singleProcess ? '-' : mib(r.reference?.peakMiB),
    s.singleProcess ? '-' : mib(r.ours?.peakMiB),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const refStops = s.stopPoints.reference;
  const merges = s.rows.filter((r) => r.diff !== undefined && !/^(Model|Ensemble)/.test(r.method));
  const meanDiff =
    merges.length === 0
      ? []
      : [
          `Mean Δ joint over the ${merges.length} merged rows: ${signed(merges.reduce((a, r) => a + r.diff!.joint, 0) / merges.length)}.`,
        ];
  return [
    `pair ${s.pair} (${s.files.join(', ')}), ResNet-20 x${s.width}, tasks ${s.tasks.map((t) => t.join(',')).join(' / ')}`,
    `merge: ${s.samples} fashion-mnist:train images (seed ${s.seed}), batch ${s.batchSize}, mean ${s.preprocessing.mean.join(',')} std ${s.preprocessing.std.join(',')}; test: ${s.testImages} images; ZipIt! alpha ${s.alpha} beta ${s.beta}; ${s.threads} threads`,
    `reference: ${s.reference} (torch ${s.torch ?? '?'}), base models' BN ${s.baseReset ? 'reset on the merge images before merging, as its scripts do' : 'NOT reset (--no-base-reset)'}; ours: sources ${s.oursBaseReset ? 'reset the same way' : 'NOT reset'}; stop_at 13/20 = node ${refStops?.['zipit-13'] ?? '?'}, 7/20 = node ${refStops?.['zipit-7'] ?? '?'}; ours: --stop-at ${s.stopPoints.ours['zipit-13']} / ${s.stopPoints.ours['zipit-7']}`,
    `ours: commit ${s.oursCode?.join(' THEN ') ?? '?'}${(s.oursCode?.length ?? 0) > 1 ? ' (src/ CHANGED during the run: rows may mix code versions)' : ''}`,
    '',
    format(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.map(format),
    '',
    `Accuracies in %. Δ = ours - reference. s: each side's whole merge (statistics, matching, weights, BN reset; not the scoring). MiB: peak RSS (VmHWM) of the process that ran the row${s.singleProcess ? ' (not shown with --single-process)' : ''}.`,
    ...meanDiff,
    ...(s.plainPassSeconds === undefined
      ? []
      : [
          `Floor: one plain pass of model A over the merge images took ${s.plainPassSeconds.toFixed(2)} s; the paper's merge needs ${s.files.length + 1} (statistics of each model, the merged model's BN reset): ${((s.files.length + 1) * s.plainPassSeconds).toFixed(1)} s. Ours s / floor: ${merges
            // W.Avg reads no statistics: its one pass is the BN reset.
            .filter((r) => r.ours?.mergeSeconds !== undefined && r.method !== 'W.Avg')
            .map(
              (r) =>
                `${r.method} ${(r.ours!.mergeSeconds! / ((s.files.length + 1) * s.plainPassSeconds!)).toFixed(2)}x`,
            )
            .join(', ')}.`,
        ]),
    ...cliLine(s),
    `The reference's BN reset of the base models took ${sec(s.referenceBaseResetSeconds)} s, ours ${sec(s.oursBaseResetSeconds)} s (once per process, not in Ref s / Ours s). Load check, max |logit difference| of the reference's model vs onnxruntime on ${s.checkImages} test images: ${(s.loadMaxAbsDiff ?? []).map((d) => d.toExponential(1)).join(', ') || '-'}.`,
  ].join('\n');
}

/**
 * The whole `zipit merge` process against the reference's whole merge procedure: its ZipIt!
 * 20/20 merge plus, when its base models were reset, that reset (its scripts do both; our
 * defaults reset the sources inside the process).
 */
function cliLine(s: Summary): string[] {
  if (s.cliSeconds === undefined) return [];
  const zip = s.rows.find((r) => r.method === 'ZipIt!20/20')?.reference?.mergeSeconds;
  if (zip === undefined) return [`Whole \`zipit merge\` process: ${s.cliSeconds.toFixed(1)} s.`];
  const reset = s.baseReset ? (s.referenceBaseResetSeconds ?? 0) : 0;
  const whole = zip + reset;
  return [
    `Whole \`zipit merge\` process (${s.cliCommand ?? '?'}): ${s.cliSeconds.toFixed(1)} s, against the reference's ZipIt! 20/20 merge${s.baseReset ? " + its base models' BN reset" : ''} ${whole.toFixed(1)} s: ${(s.cliSeconds / whole).toFixed(2)}x.`,
  ];
}

/**
 * Several saved runs (one per pair) as one Markdown table: per method, each pair's joint
 * accuracy reference / ours, then the mean of each side and the mean difference.
 */
export function renderMean(summaries: readonly Summary[]): string {
  const methods = [...new Set(summaries.flatMap((s) => s.rows.map((r) => r.method)))];
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const lines = [
    `| method | ${summaries.map((s) => `${s.pair} ref / ours`).join(' | ')} | mean ref | mean ours | mean Δ |`,
    `| --- | ${summaries.map(() => '---').join(' | ')} | --- | --- | --- |`,
  ];
  for (const method of methods) {
    const rows = summaries.map((s) => s.rows.find((r) => r.method === method));
    const both = rows.filter((r) => r?.reference !== undefined && r.ours !== undefined);
    const cells = rows.map((r) => `${pct(r?.reference?.joint)} / ${pct(r?.ours?.joint)}`);
    const refs = both.map((r) => r!.reference!.joint);
    const ours = both.map((r) => r!.ours!.joint);
    lines.push(
      both.length === rows.length
        ? `| ${method} | ${cells.join(' | ')} | ${pct(mean(refs))} | ${pct(mean(ours))} | ${signed(mean(ours) - mean(refs))} |`
        : `| ${method} | ${cells.join(' | ')} | - | - | - |`,
    );
  }
  const settings = summaries.map(
    (s) => `${s.pair}: alpha ${s.alpha}, beta ${s.beta}, base reset ${s.baseReset ? 'on' : 'off'}`,
  );
  return [...lines, '', `Joint accuracy in %. ${settings.join('; ')}.`].join('\n');
}
