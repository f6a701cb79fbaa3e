/**
 * @file Pure layout arithmetic of the space analysis: where a channel axis lands when a value is
 * broadcast, reshaped or reduced. No walk state; each function says when it cannot tell.
 */
import type { Dim } from '../onnx/model.js';
import type { ChannelLayout } from './space-types.js';

/** The number of entries a layout occupies on its channel axis (repeats included). */
export function layoutWidth(layout: ChannelLayout): number {
  return layout.segments.reduce((a, s) => a + s.width * s.repeat, 0);
}

/** Where a parameter tensor's channel axis is, given the activation's channel axis and rank (numpy broadcast). */
export function broadcastAxis(
  paramDims: readonly Dim[],
  activationRank: number,
  channelAxis: number,
  width: number,
): number | undefined {
  const axis = channelAxis - (activationRank - paramDims.length);
  if (axis < 0 || axis >= paramDims.length) return undefined;
  if (paramDims[axis] === 1 && width !== 1) return undefined;
  return paramDims[axis] === width ? axis : undefined;
}

/** A product of dims: its static factor and its symbols (the batch), or undefined if a dim is unknown. */
function product(dims: readonly Dim[]): { size: number; symbols: string } | undefined {
  let size = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    if (d === null) return undefined;
    if (typeof d === 'number') size *= d;
    else symbols.push(d);
  }
  return { size, symbols: symbols.sort().join('*') };
}

/**
 * The layout of a row-major reshape (Flatten, Reshape, Squeeze, Unsqueeze) of a value of shape
 * `inShape` whose channels are `layout`. Elements keep their order, so channel c stays one
 * block only if the dims before the channel axis multiply to the dims before some output axis b;
 * then axis b holds each channel `r` times in a row (r = out[b] / C, the leading part of the dims
 * after the channels: the h*w of an NCHW flatten). Among several such b (size-1 dims), the
 * channel axis's own index wins. Undefined when the channels do not stay one block per channel,
 * or when a dim that decides it is unknown.
 */
export function reshapedLayout(
  inShape: readonly Dim[],
  outShape: readonly Dim[],
  layout: ChannelLayout,
): ChannelLayout | undefined {
  const channels = inShape[layout.axis];
  if (typeof channels !== 'number' || channels !== layoutWidth(layout) || channels === 0)
    return undefined;
  const before = product(inShape.slice(0, layout.axis));
  const after = product(inShape.slice(layout.axis + 1));
  if (before === undefined || after === undefined || after.symbols !== '') return undefined;
  const candidates: { axis: number; repeat: number }[] = [];
  for (let b = 0; b < outShape.length; b++) {
    const prefix = product(outShape.slice(0, b));
    const rest = product(outShape.slice(b + 1));
    const here = outShape[b];
    if (prefix === undefined || prefix.size !== before.size || prefix.symbols !== before.symbols)
      continue;
    if (typeof here !== 'number' || here % channels !== 0) continue;
    const repeat = here / channels;
    if (rest === undefined || rest.symbols !== '' || repeat * rest.size !== after.size) continue;
    candidates.push({ axis: b, repeat });
  }
  const chosen = candidates.find((c) => c.axis === layout.axis) ?? candidates[0];
  if (chosen === undefined) return undefined;
  return {
    axis: chosen.axis,
    segments: layout.segments.map((s) => ({ ...s, repeat: s.repeat * chosen.repeat })),
  };
}

/**
 * The Transpose permutation that brings a value of rank `rank` with its channels on `axis` to
 * channels-first ([N, C, ...the other axes in order]), as statistics and REPAIR read it.
 */
export function channelsFirstPerm(rank: number, axis: number): number[] {
  return [
    0,
    axis,
    ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== 0 && i !== axis),
  ];
}
