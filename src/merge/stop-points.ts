/** @file Valid stop points for partial zipping: cuts of the graph where all flow passes through one space. */
import { fail, ok, type Result } from '../errors.js';
import { analyzeGraph, type AnalyzedGraph } from '../graph/analyze.js';
import { nodeMacs } from '../graph/flops.js';
import { analyzeSpaces, type SpaceAnalysis } from '../graph/spaces.js';
import type { Model } from '../onnx/model.js';

/**
 * A cut after node `position` (in topological order): the only value computed before it and
 * read after it is `value`, whose channels are space `space`. The trunk is nodes 0..position.
 */
export interface StopPoint {
  /** What `--stop-at` takes: the name of the last trunk node. */
  readonly id: string;
  readonly position: number;
  readonly value: string;
  readonly space: number;
  /** The channel axis of `value` (1, or the last axis of a transformer's tokens). */
  readonly axis: number;
  /** Weight layers on the longest path inside the trunk, and in the whole model (the paper's a/b). */
  readonly zipped: number;
  readonly total: number;
  /** MACs per image of the trunk and of one head. */
  readonly trunkMacs: number;
  readonly headMacs: number;
}

/** Longest-path weight-layer counts: for every value, the most weight ops on a path from the input. */
function weightDepths(graph: AnalyzedGraph): Map<string, number> {
  const depth = new Map<string, number>();
  for (const node of graph.model.graph.nodes) {
    const before = Math.max(0, ...node.inputs.map((i) => depth.get(i) ?? 0));
    const own = graph.roles.get(node.name) === 'weight' ? 1 : 0;
    for (const o of node.outputs) depth.set(o, before + own);
  }
  return depth;
}

/** Every valid stop point of a model, in graph order (the full model's end is not one: that is a full zip). */
export function findStopPoints(graph: AnalyzedGraph, spaces: SpaceAnalysis): StopPoint[] {
  const nodes = graph.model.graph.nodes;
  const lastUse = new Map<string, number>();
  nodes.forEach((node, i) => node.inputs.forEach((input) => lastUse.set(input, i)));
  for (const output of graph.model.graph.outputs) lastUse.set(output.name, nodes.length);
  const producedAt = new Map<string, number>();
  nodes.forEach((node, i) => node.outputs.forEach((o) => producedAt.set(o, i)));
  const depths = weightDepths(graph);
  const total = Math.max(0, ...graph.model.graph.outputs.map((o) => depths.get(o.name) ?? 0));
  // Prefix sums, one pass: recounting every prefix per node made inspect quadratic in depth.
  const macs = nodes.map((node) => nodeMacs(graph, node));
  const allMacs = macs.reduce((a, b) => a + b, 0);
  const outputs = new Set(graph.model.graph.outputs.map((o) => o.name));
  const points: StopPoint[] = [];
  const live = new Set<string>();
  let trunkMacs = 0;
  for (const [i, node] of nodes.entries()) {
    for (const o of node.outputs) if ((lastUse.get(o) ?? -1) > i) live.add(o);
    for (const input of node.inputs) if ((lastUse.get(input) ?? -1) <= i) live.delete(input);
    trunkMacs += macs[i]!;
    if (live.size !== 1) continue;
    const value = [...live][0]!;
    const layout = spaces.layouts.get(value);
    if (
      layout === undefined ||
      layout.heads !== undefined ||
      layout.segments.length !== 1 ||
      layout.segments[0]!.repeat !== 1
    )
      continue;
    const space = spaces.spaces[layout.segments[0]!.space]!;
    if (space.kind === 'fixed' || outputs.has(value)) continue;
    if ((producedAt.get(value) ?? -1) !== i) continue;
    const point = {
      id: node.name,
      position: i,
      value,
      space: space.id,
      axis: layout.axis,
      zipped: depths.get(value) ?? 0,
      total,
      trunkMacs,
      headMacs: allMacs - trunkMacs,
    };
    // Consecutive cuts in one space with the same depth (conv, BN, ReLU) zip the same layers:
    // keep the last, after the per-channel ops, where the reference measures.
    const previous = points[points.length - 1];
    if (
      previous !== undefined &&
      previous.space === point.space &&
      previous.zipped === point.zipped
    )
      points.pop();
    points.push(point);
  }
  return points;
}

/**
 * Resolves `--stop-at`: a node name (a stop point's id), a space id, or a fraction in (0, 1)
 * of the weight layers (the deepest stop point with zipped/total at most that fraction).
 */
export function resolveStopPoint(points: readonly StopPoint[], text: string): Result<StopPoint> {
  const byId = points.find((p) => p.id === text);
  if (byId) return ok(byId);
  const list = (): string =>
    points.map((p) => `${p.id} (space ${p.space}, ${p.zipped}/${p.total})`).join(', ');
  const number = Number(text);
  if (text.trim() !== '' && Number.isFinite(number)) {
    if (Number.isInteger(number) && number >= 1) {
      const bySpace = points.filter((p) => p.space === number);
      if (bySpace.length > 0) return ok(bySpace[bySpace.length - 1]!);
      return fail(
        'bad-argument',
        `Space ${number} is not a valid stop point; valid: ${list() || 'none'}.`,
      );
    }
    if (number > 0 && number < 1) {
      const below = points.filter((p) => p.zipped / p.total <= number + 1e-9);
      if (below.length > 0) return ok(below[below.length - 1]!);
      return fail(
        'bad-argument',
        `No stop point zips at most ${number} of the layers; valid: ${list() || 'none'}.`,
      );
    }
  }
  return fail(
    'bad-argument',
    `Unknown stop point '${text}'; expected a node name, a space id or a fraction in (0, 1); valid: ${list() || 'none'}.`,
  );
}

/** The ids of every stop point of a model (what `--stop-points all` means). */
export function allStopPointIds(model: Model): Result<string[]> {
  const graph = analyzeGraph(model);
  if (!graph.ok) return graph;
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) return spaces;
  return ok(findStopPoints(graph.value, spaces.value).map((p) => p.id));
}

/**
 * Resolves every `--stop-at` text against model 0's stop points up front, failing on the first
 * that names none: commands running several merges (compare) check them all before any work.
 */
export function checkStopPoints(model: Model, texts: readonly string[]): Result<void> {
  if (texts.length === 0) return ok(undefined);
  const graph = analyzeGraph(model);
  if (!graph.ok) return graph;
  const spaces = analyzeSpaces(graph.value);
  if (!spaces.ok) return spaces;
  const points = findStopPoints(graph.value, spaces.value);
  for (const text of texts) {
    const resolved = resolveStopPoint(points, text);
    if (!resolved.ok) return resolved;
  }
  return ok(undefined);
}
