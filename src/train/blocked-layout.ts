/** @file Convs in onnxruntime's blocked NCHWc layout: filter order, reorders, padded planes. */
import type { AttributeInput } from '../onnx/builder.js';
import type { Emitter } from './emitter.js';
import type { PlannedNode } from './plan.js';

/** onnxruntime's contrib domain of blocked-layout (NCHWc) CPU kernels. */
const NCHWC = 'com.microsoft.nchwc';

/** Whether Conv `p` can run in the NCHWc layout with channel block `block`. */
export function blockedConvFits(p: PlannedNode, block: number): boolean {
  const inputChannels = p.inputShapes[0]![1]!;
  const outputChannels = p.outputShape[1]!;
  return inputChannels % block === 0 && outputChannels % block === 0;
}

/**
 * Filter `w` of shape `dims` [O, I, kh, kw] in the order onnxruntime's NCHWc Conv reads
 * (OIHWBiBo: [O/B][I/B][kh][kw][B of I][B of O]); O and I must be multiples of `block`.
 */
export function blockedFilter(
  e: Emitter,
  w: string,
  dims: readonly number[],
  block: number,
): string {
  const [o, i, kh, kw] = dims as [number, number, number, number];
  const split = e.reshape(w, [o / block, block, i / block, block, kh, kw]);
  return e.reshape(e.b.op('Transpose', [split], { perm: [0, 2, 4, 5, 3, 1] }), dims);
}

/**
 * A Conv of NCHW `x` with a blocked filter, run in the NCHWc layout: reorder in, Conv,
 * reorder out to NCHW with `channels` channels. Returns the NCHW output's name. With
 * `padInput`, zeros are written around the blocked input's planes first (see
 * convWeightGradByConv for why), so `attributes` should then carry no pads.
 */
export function blockedConv(
  e: Emitter,
  x: string | { readonly blocked: string },
  filter: string,
  bias: string | undefined,
  attributes: Readonly<Record<string, AttributeInput>>,
  out: { channels: number; name?: string; outputs?: readonly string[] },
  padInput?: {
    dims: readonly number[];
    block: number;
    /** Rows/columns added before and after each plane; a negative end crops. */
    pads: { readonly begin: readonly [number, number]; readonly end: readonly [number, number] };
  },
): string {
  let blockedX = typeof x === 'string' ? reorderInput(e, x) : x.blocked;
  if (padInput !== undefined) {
    // The blocked planes are [H][W][B]; padding them as a 5-D view copies whole rows of W*B
    // values, which measured faster than padding the NCHW planes beforehand (scratch, 128
    // channels 14x14: 4 ms against 9 ms).
    const [n, c, h, w] = padInput.dims as [number, number, number, number];
    const [bh, bw] = padInput.pads.begin;
    const [eh, ew] = padInput.pads.end;
    const b = padInput.block;
    const planes = e.reshape(blockedX, [n, c / b, h, w, b]);
    const padded = e.shared('Pad', [planes, e.ints([0, 0, bh, bw, 0, 0, 0, eh, ew, 0])]);
    blockedX = e.reshape(padded, [n, c, h + bh + eh, w + bw + ew]);
  }
  const inputs = bias === undefined || bias === '' ? [blockedX, filter] : [blockedX, filter, bias];
  // The node keeps the forward Conv's name (profiles stay readable); its blocked output
  // gets a fresh one, since node and first-output names coincide in our models.
  const [blockedY] = e.b.node('Conv', inputs, attributes, {
    domain: NCHWC,
    ...(out.name !== undefined
      ? { name: out.name, outputs: [e.b.fresh(`${out.name}/blocked`)] }
      : {}),
  });
  return e.b.node(
    'ReorderOutput',
    [blockedY!],
    { channels: out.channels },
    { domain: NCHWC, ...(out.outputs !== undefined ? { outputs: out.outputs } : {}) },
  )[0]!;
}

/** NCHW `x` in onnxruntime's NCHWc layout (ReorderInput). */
export function reorderInput(e: Emitter, x: string): string {
  return e.shared('ReorderInput', [x], {}, NCHWC);
}
