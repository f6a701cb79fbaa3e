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
  for (const output of graph.model.graph.outputs) {
    walk.fix(walk.layouts.get(output.name), `graph output '${output.name}'`);
    // Attention maps given out are indexed by head: those heads stay in place.
    const scores = walk.scores.get(output.name);
    if (scores !== undefined) walk.headsInPlace.add(scores.space);
  }
  const collapsed = collapseSpaces(walk);
  if (!collapsed.ok) return collapsed;
  const { renumber } = collapsed.value;
  // A site whose channels are not on axis 1 says on which axis they are.
  const spaces = collapsed.value.spaces.map((space) => {
    const withAxis = <T extends { readonly value: string }>(site: T): T => {
      const axis = walk.layouts.get(site.value)?.axis;
      return axis === undefined || axis === 1 ? site : { ...site, axis };
    };
    return {
      ...space,
      ...(space.site ? { site: withAxis(space.site) } : {}),
      ...(space.alsoAt ? { alsoAt: space.alsoAt.map(withAxis) } : {}),
    };
  });
  // A site must hold each channel once: one read after a flatten (each channel repeated h*w
  // times, e.g. Flatten - Relu - Gemm) or inside attention's heads would be read wrongly.
  for (const space of spaces) {
    for (const site of [space.site, ...(space.alsoAt ?? [])]) {
      const layout = site && walk.layouts.get(site.value);
      if (layout === undefined || space.kind === 'fixed') continue;
      if (layout.heads !== undefined || layout.segments.some((g) => g.repeat !== 1))
        return fail(
          'unsupported-model',
          `Space ${space.id} (written by ${space.producers.join(', ')}) is read only at '${site!.value}', where its channels are ${layout.heads !== undefined ? 'split into attention heads' : 'repeated by a flatten'}; zipit measures a space where each channel is one entry. Apply the activation before the flatten, and export again.`,
        );
    }
  }
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
    attention: walk.attention.map((a) => {
      const [queryKey, value] = renumber([
        { space: a.queryKey, width: 0, repeat: 1 },
        { space: a.value, width: 0, repeat: 1 },
      ]);
      const inPlace = [...walk.headsInPlace].some(
        (raw) => walk.union.find(raw) === walk.union.find(a.queryKey),
      );
      return { queryKey: queryKey!.space, value: value!.space, ...(inPlace ? { inPlace } : {}) };
    }),
    layouts: new Map(
      [...walk.layouts].map(([name, l]) => [
        name,
        { axis: l.axis, segments: renumber(l.segments), ...(l.heads ? { heads: l.heads } : {}) },
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
    if (r.groups !== undefined && target.groups !== undefined && r.groups !== target.groups)
      return fail(
        'unsupported-model',
        `Values tied together are split into ${r.groups} and ${target.groups} attention heads (producers ${[...r.producers, ...target.producers].join(', ')}).`,
      );
    target.groups ??= r.groups;
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
  const sorted = [...r.siteCandidates].sort((a, b) => b.order - a.order);
  const site = sorted[0];
  // Candidates of that same node (attention's Q K^T reads queries and keys) are read too.
  const alsoAt = sorted.filter(
    (c, i) => i > 0 && c.order === site!.order && c.value !== site!.value,
  );
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
    ...(alsoAt.length > 0
      ? { alsoAt: alsoAt.map((c) => ({ value: c.value, offset: c.offset })) }
      : {}),
    producerOutputs: r.producerOutputs,
    ...(r.groups !== undefined && r.groups > 1 ? { groups: r.groups } : {}),
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
