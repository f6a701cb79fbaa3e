/** @file Whether this onnxruntime build runs blocked-layout (NCHWc) convolutions on this CPU,
 * and with which channel block. MLAS picks the block from the instruction set (8 with AVX2,
 * 16 with AVX-512) and some builds have no NCHWc kernels at all, so the trainer asks here
 * before it writes com.microsoft.nchwc ops into a graph.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/builder.js';
import { encodeModel } from '../onnx/model.js';

const CHANNELS = 32;
const WIDTH = 2;
let probed: Promise<number | undefined> | undefined;

/** The NCHWc channel block of this machine's onnxruntime, or undefined if it has none. */
export function nchwcBlockSize(): Promise<number | undefined> {
  probed ??= probe();
  return probed;
}

/**
 * Reorders a [1, 32, 1, 2] tensor holding its own NCHW flat indices (value of (c, w) = 2c + w).
 * In the blocked layout [1, 32/B, 1, 2, B] the element at flat position B is (c 0, w 1), i.e.
 * the value 1, and for every smaller power of two the value there is not 1.
 */
async function probe(): Promise<number | undefined> {
  const b = new GraphBuilder('nchwc-probe');
  b.input('x', [1, CHANNELS, 1, WIDTH]);
  b.node('ReorderInput', ['x'], {}, { outputs: ['y'], domain: 'com.microsoft.nchwc' });
  b.output('y');
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(encodeModel(b.build()), {
      intraOpNumThreads: 1,
      logSeverityLevel: 3,
    });
    const x = Float32Array.from({ length: CHANNELS * WIDTH }, (_, i) => i);
    const result = await session.run({ x: new ort.Tensor('float32', x, [1, CHANNELS, 1, WIDTH]) });
    const y = result.y!.data as Float32Array;
    for (let block = 4; block <= CHANNELS; block *= 2) {
      if (y[block] === 1 && y[1] === 2) return block;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    await session?.release();
  }
}
