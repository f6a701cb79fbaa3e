/** @file Structure check: K models must be the same graph up to names; maps each model's initializer names onto model 0's. */
import { fail, ok, type Result } from '../errors.js';
import type { AnalyzedGraph } from '../graph/analyze.js';
import { formatShape } from '../graph/value-state.js';
import type { Attribute } from '../onnx/model.js';

/** For each model, initializer name in model 0 -> that model's name for the same tensor. */
export type InitializerMaps = readonly ReadonlyMap<string, string>[];

/** What the structure check returns: per model, name maps from model 0's names to its own. */
export interface StructureMaps {
  readonly initializers: InitializerMaps;
  /** Activation value names (model 0 -> model k). */
  readonly values: readonly ReadonlyMap<string, string>[];
}

function attributesText(attributes: object): string {
  return JSON.stringify(attributes, (_, v: unknown) =>
    typeof v === 'bigint' ? String(v) : ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v,
  );
}

/**
 * The attributes as an ONNX file stores them: float attributes are float32, so a model built
 * in memory (epsilon 1e-5) and the same model read back from its file (9.99999975e-6) agree.
 */
function storedAttributesText(attributes: Readonly<Record<string, Attribute>>): string {
  const stored = Object.fromEntries(
    Object.entries(attributes).map(([name, a]) => [
      name,
      a.type === 'float'
        ? { ...a, value: Math.fround(a.value) }
        : a.type === 'floats'
          ? { ...a, value: a.value.map((v) => Math.fround(v)) }
          : a,
    ]),
  );
  return attributesText(stored);
}

/**
 * Checks that every model has model 0's structure (node by node in topological order: op,
 * attributes, wiring, weight shapes; the input shapes), for the first `limit` nodes when given,
 * and returns the name maps.
 * Fails with 'structure-mismatch' naming the first difference.
 */
export function checkSameStructure(
  graphs: readonly AnalyzedGraph[],
  labels: readonly string[],
  limit?: number,
): Result<StructureMaps> {
  const reference = graphs[0]!;
  const refNodes = reference.model.graph.nodes;
  const maps: Map<string, string>[] = [];
  const valueMaps: Map<string, string>[] = [];
  for (const [k, graph] of graphs.entries()) {
    const map = new Map<string, string>();
    const where = `${labels[k]} differs from ${labels[0]}`;
    const nodes = graph.model.graph.nodes;
    const refInputs = reference.model.graph.inputs;
    const inputs = graph.model.graph.inputs;
    if (inputs.length !== refInputs.length)
      return fail(
        'structure-mismatch',
        `${where}: ${inputs.length} graph inputs vs ${refInputs.length}.`,
      );
    for (const [i, input] of inputs.entries()) {
      const a = formatShape(reference.states.get(refInputs[i]!.name)?.shape ?? []);
      const b = formatShape(graph.states.get(input.name)?.shape ?? []);
      if (a !== b)
        return fail(
          'structure-mismatch',
          `${where}: input shape ${b} vs ${a}; the models must take the same input.`,
        );
    }
    // Values: model 0's value name for each of this model's values, to compare wiring.
    const valueMap = new Map<string, string>(
      inputs.map((input, i) => [input.name, refInputs[i]!.name]),
    );
    // With a limit (partial zipping) only the shared trunk must agree; the heads are each model's own.
    const count = Math.min(nodes.length, refNodes.length, limit ?? Infinity);
    for (let i = 0; i < count; i++) {
      const a = refNodes[i]!;
      const b = nodes[i]!;
      const at = `${where} at node ${i + 1} ('${b.name}' vs '${a.name}')`;
      if (a.opType !== b.opType)
        return fail('structure-mismatch', `${at}: op ${b.opType} vs ${a.opType}.`);
      if (storedAttributesText(a.attributes) !== storedAttributesText(b.attributes))
        return fail(
          'structure-mismatch',
          `${at}: attributes differ (${attributesText(b.attributes)} vs ${attributesText(a.attributes)}).`,
        );
      if (a.inputs.length !== b.inputs.length || a.outputs.length !== b.outputs.length)
        return fail('structure-mismatch', `${at}: different numbers of inputs or outputs.`);
      for (const [j, name] of b.inputs.entries()) {
        const refName = a.inputs[j]!;
        const tensor = graph.model.graph.initializers.get(name);
        const refTensor = reference.model.graph.initializers.get(refName);
        if ((tensor === undefined) !== (refTensor === undefined))
          return fail('structure-mismatch', `${at}: input ${j + 1} is a weight in one model only.`);
        if (tensor !== undefined && refTensor !== undefined) {
          if (formatShape(tensor.dims) !== formatShape(refTensor.dims)) {
            return fail(
              'structure-mismatch',
              `${at}: weight ${name} has shape ${formatShape(tensor.dims)} vs ${formatShape(refTensor.dims)}.`,
            );
          }
          map.set(refName, name);
        } else if (name !== '' && valueMap.get(name) !== refName) {
          return fail(
            'structure-mismatch',
            `${at}: input ${j + 1} comes from a different place in the graph.`,
          );
        }
      }
      b.outputs.forEach((o, j) => valueMap.set(o, a.outputs[j]!));
    }
    if (limit === undefined && nodes.length !== refNodes.length)
      return fail(
        'structure-mismatch',
        `${where}: ${nodes.length} nodes vs ${refNodes.length} (first ${count} agree).`,
      );
    // One merged model has one set of outputs: models computing different ones would merge
    // into whichever came first. Names may differ; the values (by position) may not.
    const refOutputs = reference.model.graph.outputs.map((o) => o.name);
    const outputs = graph.model.graph.outputs.map((o) => o.name);
    const sameOutputs =
      outputs.length === refOutputs.length &&
      (limit !== undefined || outputs.every((o, i) => valueMap.get(o) === refOutputs[i]));
    if (!sameOutputs)
      return fail(
        'structure-mismatch',
        `${where}: graph outputs (${outputs.join(', ')}) vs (${refOutputs.join(', ')}); the models must compute the same outputs.`,
      );
    maps.push(map);
    valueMaps.push(new Map([...valueMap].map(([own, ref]) => [ref, own])));
  }
  return ok({ initializers: maps, values: valueMaps });
}
