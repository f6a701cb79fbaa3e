/**
 * @file The folder bench/reference.ts hands to both sides: a manifest.json plus raw
 * little-endian arrays (float32 weights and preprocessed images, uint8 pixels and labels), so
 * that the reference (Python) and ours (TypeScript) read byte-identical inputs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../../src/index.js';

/** A raw array in the folder: its file and shape. */
export interface ArrayFile {
  readonly file: string;
  readonly dims: readonly number[];
}

/** One source model: its ONNX path (ours reads it) and its weights as reference state-dict keys. */
export interface ModelEntry {
  readonly path: string;
  readonly file: string;
  /** `offset` counts float32 elements into `file`. */
  readonly tensors: readonly { key: string; dims: readonly number[]; offset: number }[];
}

/** An image set: preprocessed float32 (the reference reads these) and raw uint8 (ours). */
export interface ImageSet {
  readonly images: ArrayFile;
  readonly pixels: ArrayFile;
  readonly labels: ArrayFile;
}

/** Everything both sides need. */
export interface Manifest {
  readonly pair: string;
  readonly models: readonly ModelEntry[];
  readonly width: number;
  readonly numClasses: number;
  readonly inChannels: number;
  readonly tasks: readonly (readonly number[])[];
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** Batch size of the merge statistics and of the BN reset, on both sides. */
  readonly batchSize: number;
  readonly threads: number;
  readonly samples: number;
  readonly seed: number;
  readonly merge: ImageSet;
  readonly test: ImageSet;
  /** The first test images and each model's onnxruntime logits on them: the load check. */
  readonly check: { readonly images: ArrayFile; readonly logits: readonly ArrayFile[] };
  /** Our stop-point ids for the partial rows (method -> `--stop-at` id). */
  readonly stopPoints: Readonly<Record<string, string>>;
}

/** Writes a typed array as raw little-endian bytes (this machine is little-endian: x86/arm). */
export function writeArray(
  dir: string,
  file: string,
  dims: readonly number[],
  data: Float32Array | Uint8Array,
): ArrayFile {
  writeFileSync(join(dir, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { file, dims };
}

/** Reads a uint8 array file. */
export function readBytes(dir: string, entry: ArrayFile): Uint8Array {
  return new Uint8Array(readFileSync(join(dir, entry.file)));
}

/** The dataset of an image set's raw pixels, as ours takes it. */
export function readDataset(dir: string, set: ImageSet, numClasses: number): Dataset {
  const [count, channels, height, width] = set.pixels.dims as [number, number, number, number];
  return {
    images: readBytes(dir, set.pixels),
    labels: readBytes(dir, set.labels),
    count,
    channels,
    height,
    width,
    numClasses,
  };
}

/** Reads the manifest of a folder. */
export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

/** Whole-process peak resident memory (VmHWM) in MiB, as the Python side reads it. */
export function peakMiB(): number | undefined {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}

/** One scored row of either side. */
export interface SideRow {
  readonly method: string;
  readonly joint: number;
  readonly tasks: readonly number[];
  readonly avg: number;
  /** Whole merge (statistics, matching, weights, BN reset), seconds; absent for sources. */
  readonly mergeSeconds?: number;
  /** The matching alone (the reference's compute_transform_time; ours' matching phase). */
  readonly transformSeconds?: number;
}

/** What each side's process prints. */
export interface SideOutput {
  readonly side: 'reference' | 'ours';
  readonly rows: readonly SideRow[];
  readonly peakMiB?: number;
  readonly [extra: string]: unknown;
}
