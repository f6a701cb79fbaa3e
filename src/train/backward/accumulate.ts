/** @file Sums the gradient terms reaching each tensor, emitting a sum when first asked for. */
import type { Emitter } from '../emitter.js';
import type { Gradient, PendingTransposedConv } from './types.js';

/** The gradient terms of every tensor, summed on demand. */
export class GradientSums {
  private readonly terms = new Map<string, Gradient[]>();
  constructor(private readonly e: Emitter) {}

  /** Adds one term to the gradient of `name`. */
  add(name: string, grad: Gradient): void {
    const list = this.terms.get(name);
    if (list) list.push(grad);
    else this.terms.set(name, [grad]);
  }

  /**
   * The summed gradient of `name`, or undefined when nothing reached it. Emits the sum on
   * the first call; later terms are added to that sum.
   */
  sumOf(name: string): string | undefined {
    const list = this.terms.get(name);
    if (list === undefined) return undefined;
    const terms = materialize(this.e, list);
    const sum = terms.length === 1 ? terms[0]! : this.e.b.op('Sum', terms);
    this.terms.set(name, [sum]);
    return sum;
  }
}

/** The terms of one tensor's gradient as names, merging transposed convs of equal geometry. */
function materialize(e: Emitter, terms: readonly Gradient[]): string[] {
  const names: string[] = [];
  const groups = new Map<string, PendingTransposedConv[]>();
  for (const term of terms) {
    if (typeof term === 'string') {
      names.push(term);
      continue;
    }
    const key = JSON.stringify(term.attributes);
    const group = groups.get(key);
    if (group) group.push(term);
    else groups.set(key, [term]);
  }
  // One tensor from the group's terms: itself when alone, else their concatenation.
  const joined = (tensors: readonly string[], axis: number): string =>
    tensors.length === 1 ? tensors[0]! : e.b.op('Concat', tensors, { axis });
  for (const group of groups.values()) {
    const dy = joined(
      group.map((t) => t.dy),
      1,
    );
    const weight = joined(
      group.map((t) => t.weight),
      0,
    );
    names.push(e.b.op('ConvTranspose', [dy, weight], group[0]!.attributes));
  }
  return names;
}
