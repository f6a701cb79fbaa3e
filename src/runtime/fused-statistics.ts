/** @file The statistics pass as one onnxruntime session: all K models run on the batch and
 * each space's stacked moments (sums and Gram blocks about a shift) are computed in the same
 * graph, so only K*C sums and (K*C)^2 products leave onnxruntime, not the activations.
 *
 * NOTE: the alternative, capturing every site as a graph output and feeding the activations
 * to a Gram session, copies each batch's activations out of onnxruntime into fresh JS buffers
 * and back: bench/inference.ts measured that capture at 1.65-1.9x a plain ResNet-20 x1 pass,
 * most of it in those copies, not in the kernels.
 */
import { fail, ok, runtimeFailure, type Result } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { defaultOpset, type Dim, type Model, type Node } from '../onnx/model.js';
import { int64Tensor, type Tensor } from '../onnx/tensor.js';
import type { ActivationLayout } from '../tensor/activations.js';
import { allFinite } from '../tensor/finite.js';
import { emitGram, stackMoments, type StackedMoments } from './gram.js';
import { createSession, type RunOptions, type Session } from './session.js';

/** One space whose moments the fused graph computes. */
export interface FusedSite {
  /** Per model, the value holding the space's channels. */
  readonly values: readonly string[];
  /** The space's first channel in those values, and its number of channels. */
  readonly offset: number;
  readonly width: number;
  /** Channels of the values (the space may be part of them, inside a Concat). */
  readonly channels: number;
  /** Dims of one model's activations of the space, `[N, width, ...spatial]` (N is ignored). */
  readonly dims: readonly number[];
}

/** What one fused run returns. */
export interface FusedBatch {
  /** Per site (in the order given): stacked sum [K*C] and Gram [K*C, K*C] about its shift, or undefined if not finite. */
  readonly moments: readonly (StackedMoments | undefined)[];
  /** Per model, the extra values asked for, by their names in that model. */
  readonly extra: readonly Record<string, Tensor<'float32'>>[];
}

/** A session computing the moments of every site of K models in one run per batch. */
export interface FusedStatistics {
  /** Runs one batch `[N, ...inputDims]`; `shifts[i]` (K*C values) is site i's shift. */
  run(input: Tensor<'float32'>, shifts: readonly Float32Array[]): Promise<Result<FusedBatch>>;
  release(): Promise<void>;
}

/** The lowest default-domain opset whose ReduceSum takes its axes as an input, as emitGram writes it. */
const MIN_OPSET = 13;
const INPUT = 'input';

/**
 * Whether {@link createFusedStatistics} can combine these models: one default-domain opset
 * (>= 13, for the moments' ops) shared by all, and one graph input each.
 */
export function canFuse(models: readonly Model[]): boolean {
  const opsets = new Set(models.map((m) => defaultOpset(m)));
  const [opset] = opsets;
  // Every other operator domain must be imported at one version too (one graph, one import).
  const domains = new Map<string, number>();
  for (const m of models) {
    for (const o of m.opsetImports) {
      const domain = o.domain === 'ai.onnx' ? '' : o.domain;
      if ((domains.get(domain) ?? o.version) !== o.version) return false;
      domains.set(domain, o.version);
    }
  }
  return (
    opsets.size === 1 &&
    opset !== undefined &&
    opset >= MIN_OPSET &&
    models.every(
      (m) => m.graph.inputs.filter((i) => !m.graph.initializers.has(i.name)).length === 1,
    )
  );
}

/**
 * The fused statistics model: model k's values and nodes renamed `m{k}/...` around the one
 * shared input; per site i, the moments named `s{i}/...` (see emitGram); per model, the
 * `extra` values as outputs `m{k}/<name>`. Nodes no output needs are left out.
 */
export function fusedStatisticsModel(
  models: readonly Model[],
  sites: readonly FusedSite[],
  extra: readonly (readonly string[])[],
  inputShape: readonly Dim[],
): Model {
  const b = new GraphBuilder('fused-statistics');
  const dataInput = (m: Model): string =>
    m.graph.inputs.find((i) => !m.graph.initializers.has(i.name))!.name;
  b.input(INPUT, inputShape);
  const nodes: Node[] = [];
  for (const [k, model] of models.entries()) {
    const input = dataInput(model);
    const rename = (name: string): string =>
      name === '' ? '' : name === input ? INPUT : `m${k}/${name}`;
    for (const [name, tensor] of model.graph.initializers) b.weight(rename(name), tensor);
    for (const [index, node] of model.graph.nodes.entries()) {
      nodes.push({
        ...node,
        // Unnamed nodes get their position, so that they do not all become `m{k}/`.
        name: `m${k}/${node.name === '' ? `#${index}` : node.name}`,
        inputs: node.inputs.map(rename),
        outputs: node.outputs.map(rename),
      });
    }
  }
  const wanted = new Set<string>();
  for (const [k, names] of extra.entries()) for (const name of names) wanted.add(`m${k}/${name}`);
  for (const site of sites) for (const [k, v] of site.values.entries()) wanted.add(`m${k}/${v}`);
  for (const node of liveNodes(nodes, wanted)) b.append(node);
  for (const name of [...extra.entries()].flatMap(([k, names]) => names.map((n) => `m${k}/${n}`)))
    b.output(name);
  for (const [i, site] of sites.entries()) {
    const prefix = `s${i}/`;
    const xs = site.values.map((v, k) => {
      const full = `m${k}/${v}`;
      if (site.offset === 0 && site.width === site.channels) return full;
      return b.op('Slice', [
        full,
        b.weight(`${prefix}start`, int64Tensor([1], [site.offset])),
        b.weight(`${prefix}end`, int64Tensor([1], [site.offset + site.width])),
        b.weight(`${prefix}axis`, int64Tensor([1], [1])),
      ]);
    });
    emitGram(b, xs, siteLayout(site, models.length), { mode: 'fast', prefix });
  }
  const model = b.build();
  // The models' own opsets (canFuse checked they agree), not the builder's default.
  const domains = new Map<string, number>();
  for (const m of [model, ...models])
    for (const o of m.opsetImports) domains.set(o.domain === 'ai.onnx' ? '' : o.domain, o.version);
  return {
    ...model,
    irVersion: Math.max(model.irVersion, ...models.map((m) => m.irVersion)),
    opsetImports: [...domains].map(([domain, version]) => ({ domain, version })),
  };
}

function siteLayout(site: FusedSite, numModels: number): ActivationLayout {
  const [batch, width, ...spatialDims] = site.dims as [number, number, ...number[]];
  const spatial = spatialDims.reduce((a, d) => a * d, 1);
  return { numModels, width, batch, spatial, count: batch * spatial, dims: [...site.dims] };
}

/** The nodes (in their order) that some value of `wanted` depends on. */
function liveNodes(nodes: readonly Node[], wanted: ReadonlySet<string>): Node[] {
  const needed = new Set(wanted);
  const live: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    live.push(node);
    for (const input of node.inputs) if (input !== '') needed.add(input);
  }
  return live.reverse();
}

/** Creates the fused session for `models` (see {@link canFuse}). */
export async function createFusedStatistics(
  models: readonly Model[],
  sites: readonly FusedSite[],
  extra: readonly (readonly string[])[],
  inputShape: readonly Dim[],
  options: RunOptions = {},
): Promise<Result<FusedStatistics>> {
  if (!canFuse(models))
    return fail('unsupported-model', 'These models cannot share one statistics graph.');
  const session = await createSession(
    fusedStatisticsModel(models, sites, extra, inputShape),
    options,
  );
  if (!session.ok) return session;
  const s: Session = session.value;
  const numModels = models.length;
  return ok({
    async run(input, shifts) {
      const feeds: Record<string, Tensor<'float32'>> = { [INPUT]: input };
      for (const [i, shift] of shifts.entries())
        feeds[`s${i}/shift`] = { dtype: 'float32', dims: [shift.length], data: shift };
      let outputs: Record<string, Tensor<'float32'>>;
      try {
        outputs = await s.run(feeds);
      } catch (error: unknown) {
        return runtimeFailure('onnxruntime failed in the statistics pass', error);
      }
      const moments = sites.map((site, i) => {
        const m = stackMoments(outputs, `s${i}/`, numModels, site.width);
        return allFinite(m.sum) && allFinite(m.gram) ? m : undefined;
      });
      const extraOut = extra.map((names, k) =>
        Object.fromEntries(names.map((n) => [n, outputs[`m${k}/${n}`]!])),
      );
      return ok({ moments, extra: extraOut });
    },
    async release() {
      await s.release();
    },
  });
}
