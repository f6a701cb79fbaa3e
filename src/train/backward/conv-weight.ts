/** @file A Conv's weight gradient, three exact ways (plain Conv, NCHWc Conv, im2col Gemm). */
import { blockedConv } from '../blocked-layout.js';
import type { Emitter } from '../emitter.js';
import { geometryOf, type PlannedNode } from '../plan.js';

/** The NCHWc block and dY reordered to it (made once per Conv, on first use). */
export interface BlockedGradient {
  readonly block: number;
  readonly blockedDy: () => string;
}

/**
 * dW as a Conv of the batch-transposed input with the batch-transposed output gradient: the
 * batch becomes the channels summed over and the output map is the kernel. With `blocked`,
 * the Conv runs in the NCHWc layout (the batch and O must be multiples of the block).
 */
export function convWeightGradByConv(
  e: Emitter,
  p: PlannedNode,
  dy: string,
  blocked?: BlockedGradient,
): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, , h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, o, oh, ow] = p.outputShape as [number, number, number, number];
  const xt = e.shared('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  // The zeros are written out rather than left to the Conv's pads: here almost every output
  // position overlaps the border, and onnxruntime's border path measured about 2x slower than
  // its interior one (scratch, blocked, 128 channels 14x14: Conv 116 ms with its own pads,
  // 55 ms + 4 ms for the Pad). The planes end exactly where the kernel's last tap reads, so
  // the Conv's output map is the kernel itself: a strided Conv's padded planes can be a row
  // longer, which made the dilated Conv compute a 4x4 map for a 3x3 kernel (16/9 the work).
  const [kh, kw] = g.kernel;
  const end: [number, number] = [
    g.strides[0] * (oh - 1) + kh - h - g.pads[0],
    g.strides[1] * (ow - 1) + kw - w - g.pads[1],
  ];
  const begin: [number, number] = [g.pads[0], g.pads[1]];
  const padOrCrop = begin.some((v) => v !== 0) || end.some((v) => v !== 0);
  // The strided forward conv becomes a dilated one here.
  const attributes = { kernel_shape: [oh, ow], dilations: g.strides };
  let r: string; // [I, O, kh, kw]
  if (blocked === undefined) {
    const input = padOrCrop
      ? e.shared('Pad', [xt, e.ints([0, 0, begin[0], begin[1], 0, 0, end[0], end[1]])])
      : xt;
    const dyt = b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }); // [O, N, OH, OW]
    r = b.op('Conv', [input, dyt], attributes);
  } else {
    // The blocked filter order of dY^T is [O/B][N/B][OH][OW][B of N][B of O]. From the
    // blocked dY ([N/B][B of N][O/B][OH*OW][B of O]) that is one transpose that keeps the
    // innermost B values together; it measured faster than transposing dY to [O, N, ...],
    // reordering that and moving one axis innermost, and dY's reorder is shared with dX.
    const block = blocked.block;
    const split = e.reshape(blocked.blockedDy(), [n / block, block, o / block, oh * ow, block]);
    const filter = e.reshape(b.op('Transpose', [split], { perm: [2, 0, 3, 1, 4] }), [o, n, oh, ow]);
    const i = p.inputShapes[0]![1]!;
    r = blockedConv(
      e,
      xt,
      filter,
      undefined,
      attributes,
      { channels: o },
      padOrCrop ? { dims: [i, n, h, w], block, pads: { begin, end } } : undefined,
    );
  }
  return b.op('Transpose', [r], { perm: [1, 0, 2, 3] });
}

/** dW as one Gemm: output gradient [O, N*OH*OW] times the im2col patches [I*kh*kw, N*OH*OW]^T. */
export function convWeightGradByIm2col(e: Emitter, p: PlannedNode, dy: string): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, i] = p.inputShapes[0] as [number, number, number, number];
  const [, o, oh, ow] = p.outputShape as [number, number, number, number];
  const [kh, kw] = g.kernel;
  if (g.strides[0] === 1 && g.strides[1] === 1) return convWeightGradFlat(e, p, dy);
  let xt = b.op('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  if (g.pads[0] > 0 || g.pads[1] > 0) {
    xt = b.op('Pad', [xt, e.ints([0, 0, g.pads[0], g.pads[1], 0, 0, g.pads[0], g.pads[1]])]);
  }
  const taps: string[] = [];
  for (let r = 0; r < kh; r++) {
    for (let s = 0; s < kw; s++) {
      const start = [r, s];
      const end = [r + g.strides[0] * (oh - 1) + 1, s + g.strides[1] * (ow - 1) + 1];
      const tap = b.op('Slice', [
        xt,
        e.ints(start),
        e.ints(end),
        e.ints([2, 3]),
        e.ints(g.strides),
      ]); // [I, N, OH, OW]
      taps.push(b.op('Unsqueeze', [tap, e.ints([1])]));
    }
  }
  const patches = e.reshape(taps.length === 1 ? taps[0]! : b.op('Concat', taps, { axis: 1 }), [
    i * kh * kw,
    n * oh * ow,
  ]);
  const dyt = e.reshape(b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }), [o, n * oh * ow]);
  return e.reshape(b.op('Gemm', [dyt, patches], { transB: 1 }), [o, i, kh, kw]);
}

/**
 * Stride-1 dW by im2col over flattened, zero-padded planes: with X padded to [I, N*Hp*Wp] and
 * dY zero-padded to the same grid, a kernel tap (r, s) is a shift by r*Wp + s of the flat
 * index, so every tap is one contiguous slice (a memcpy) rather than a strided 4-D copy.
 * The padding positions of dY are zero, so nothing wraps between rows or images.
 */
function convWeightGradFlat(e: Emitter, p: PlannedNode, dy: string): string {
  const b = e.b;
  const g = geometryOf(p.node, p.inputShapes[1]);
  const [n, i, h, w] = p.inputShapes[0] as [number, number, number, number];
  const [, o] = p.outputShape as [number, number, number, number];
  const [kh, kw] = g.kernel;
  const [ph, pw] = g.pads;
  const hp = h + 2 * ph;
  const wp = w + 2 * pw;
  const flat = n * hp * wp;
  const used = flat - ((kh - 1) * wp + (kw - 1));
  let xt = b.op('Transpose', [p.node.inputs[0]!], { perm: [1, 0, 2, 3] }); // [I, N, H, W]
  if (ph > 0 || pw > 0) xt = b.op('Pad', [xt, e.ints([0, 0, ph, pw, 0, 0, ph, pw])]);
  const xFlat = e.reshape(xt, [i, flat]); // [I, N*Hp*Wp]
  const taps: string[] = [];
  for (let r = 0; r < kh; r++) {
    for (let s = 0; s < kw; s++) {
      const offset = r * wp + s;
      const tap = b.op('Slice', [xFlat, e.ints([offset]), e.ints([offset + used]), e.ints([1])]);
      taps.push(b.op('Unsqueeze', [tap, e.ints([1])])); // [I, 1, used]
    }
  }
  const patches = e.reshape(taps.length === 1 ? taps[0]! : b.op('Concat', taps, { axis: 1 }), [
    i * kh * kw,
    used,
  ]);
  const dyt = b.op('Transpose', [dy], { perm: [1, 0, 2, 3] }); // [O, N, OH, OW]
  const dyGrid = b.op('Pad', [dyt, e.ints([0, 0, 0, 0, 0, 0, kh - 1, kw - 1])]); // [O, N, Hp, Wp]
  const dyFlat = b.op('Slice', [
    e.reshape(dyGrid, [o, flat]),
    e.ints([0]),
    e.ints([used]),
    e.ints([1]),
  ]);
  return e.reshape(b.op('Gemm', [dyFlat, patches], { transB: 1 }), [o, i, kh, kw]);
}
