/** @file Feature-space analysis: union of channel axes derived from the graph, with no per-architecture code. */
import { fail, ok, type Result } from '../errors.js';
import type { AnalyzedGraph } from './analyze.js';
import { openInputSpaces, ROLE_STEPS } from './space-steps.js';
import type {
  FeatureSpace,
  ParamBinding,
  Segment,
  SpaceAnalysis,
  SpaceKind,
} from './space-types.js';
import { SpaceWalk, type RawSpace } from './space-walk.js';

export type {
  ChannelLayout,
  ConcatSpace,
  FeatureSpace,
  ParamBinding,
  Segment,
  SpaceAnalysis,
  SpaceKind,
} from './space-types.js';

/**
 * Derives the feature spaces of an analysed graph (ALGORITHM.md "Feature spaces"; a newcomer's
 * page: docs/FEATURE-SPACES.md): weight ops open spaces, per-channel ops carry them, residual
 * Adds tie them, Concats stack them, flattens repeat them; the graph input and outputs are fixed.
 */
export function analyzeSpaces(graph: AnalyzedGraph): Result<SpaceAnalysis> {
  const walk = new SpaceWalk(graph);
  openInputSpaces(walk);
  for (const node of graph.model.graph.nodes) {
    const role = graph.roles.get(node.name);
    if (role === undefined) continue;
    const step = ROLE_STEPS[role](walk, node);
    if (!step.ok) return step;
  }
  const bindings = tieSharedWeights(walk);
  if (!bindings.ok) return bindings;
  for (const output of graph.model.graph.outputs)
    walk.fix(walk.layouts.get(output.name), `graph output '${output.name}'`);
  const collapsed = collapseSpaces(walk);
  if (!collapsed.ok) return collapsed;
  const { spaces, renumber } = collapsed.value;
  const measurable = requireSites(spaces);
  if (!measurable.ok) return measurable;
  return ok({
    spaces,
    concats: walk.concats.map((c) => ({
      node: c.node,
      value: c.value,
      parts: [...new Set(renumber(c.parts).map((s) => s.space))],
    })),
    bindings: bindings.value.map((b) => ({ ...b, segments: renumber(b.segments) })),
    layouts: new Map(
      [...walk.layouts].map(([name, l]) => [
        name,
        { axis: l.axis, segments: renumber(l.segments) },
      ]),
    ),
  });
}

/**
 * A weight shared by several nodes (tied weights) must be transformed once: the spaces it binds
 * on the same axis are one space, and one binding of each kind is enough. Returns the bindings
 * left, in the order found.
 */
function tieSharedWeights(walk: SpaceWalk): Result<ParamBinding[]> {
  const seen = new Map<string, ParamBinding>();
  const unique: ParamBinding[] = [];
  for (const binding of walk.bindings) {
    const key = `${binding.initializer}|${binding.axis}|${binding.role}`;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, binding);
      unique.push(binding);
    } else if (first.segments.length === binding.segments.length) {
      first.segments.forEach((s, j) => walk.union.union(s.space, binding.segments[j]!.space));
    } else {
      return fail(
        'unsupported-model',
        `Weight '${binding.initializer}' is shared by nodes whose channels do not line up.`,
      );
    }
  }
  return ok(unique);
}

/**
 * Collapses the union-find into one record per space, numbered in graph order (by first
 * producer) so that `--stop-at` and statistics files name spaces stably. Spaces tied together
 * must have one width. `renumber` maps raw segments to the final ids.
 */
function collapseSpaces(
  walk: SpaceWalk,
): Result<{ spaces: FeatureSpace[]; renumber: (segments: readonly Segment[]) => Segment[] }> {
  const roots = [...new Set(walk.raw.map((_, i) => walk.union.find(i)))];
  const merged = new Map<number, RawSpace>();
  for (const root of roots)
    merged.set(root, {
      ...walk.raw[root]!,
      producers: [],
      consumers: [],
      parameters: [],
      siteCandidates: [],
      producerOutputs: [],
    });
  for (const [i, r] of walk.raw.entries()) {
    const target = merged.get(walk.union.find(i))!;
    if (r.width !== target.width) {
      return fail(
        'unsupported-model',
        `Values tied by a residual Add have ${r.width} and ${target.width} channels (producers ${[...r.producers, ...target.producers].join(', ')}).`,
      );
    }
    target.producers.push(...r.producers);
    target.consumers.push(...r.consumers);
    target.parameters.push(...r.parameters);
    target.siteCandidates.push(...r.siteCandidates);
    target.producerOutputs.push(...r.producerOutputs);
    target.fixedBy ??= r.fixedBy;
    target.order = Math.min(target.order, r.order);
  }
  const sortedRoots = roots.sort((a, b) => merged.get(a)!.order - merged.get(b)!.order || a - b);
  const idOf = new Map(sortedRoots.map((root, id) => [root, id]));
  const spaces = sortedRoots.map((root, id) => finishSpace(id, merged.get(root)!));
  return ok({
    spaces,
    renumber: (segments) =>
      segments.map((s) => ({ ...s, space: idOf.get(walk.union.find(s.space))! })),
  });
}

/** The public record of one collapsed space: its kind, and its measurement site. */
function finishSpace(id: number, r: RawSpace): FeatureSpace {
  // The reference measures at the input of the consumer that comes last (for a residual stream,
  // the input of the next stage).
  const site = [...r.siteCandidates].sort((a, b) => b.order - a.order)[0];
  const kind: SpaceKind =
    r.fixedBy !== undefined ? 'fixed' : r.producers.length > 1 ? 'residual' : 'plain';
  return {
    id,
    width: r.width,
    kind,
    ...(r.fixedBy !== undefined ? { fixedBy: r.fixedBy } : {}),
    producers: [...new Set(r.producers)],
    consumers: [...new Set(r.consumers)],
    parameters: [...new Set(r.parameters)],
    ...(site ? { site: { value: site.value, offset: site.offset } } : {}),
    producerOutputs: r.producerOutputs,
  };
}

/** A mergeable space must be measurable: merging needs its activations' correlations. */
function requireSites(spaces: readonly FeatureSpace[]): Result<void> {
  for (const s of spaces) {
    if (s.kind !== 'fixed' && s.site === undefined) {
      return fail(
        'unsupported-model',
        `Space ${s.id} (written by ${s.producers.join(', ')}) has no consumer to measure; zipit cannot merge it.`,
      );
    }
  }
  return ok(undefined);
}
