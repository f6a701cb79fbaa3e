/** @file Typed access to node attributes with ONNX defaults. */
import type { Node } from '../onnx/model.js';

/** An INT attribute, or `fallback`. */
export function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.type === 'int' ? a.value : fallback;
}

/** A FLOAT attribute, or `fallback`. */
export function floatAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.type === 'float' ? a.value : a?.type === 'int' ? a.value : fallback;
}

/** An INTS attribute, or `fallback`. */
export function intsAttr(
  node: Node,
  name: string,
  fallback?: readonly number[],
): readonly number[] | undefined {
  const a = node.attributes[name];
  return a?.type === 'ints' ? a.value : fallback;
}

/** A STRING attribute, or `fallback`. */
export function stringAttr(node: Node, name: string, fallback: string): string {
  const a = node.attributes[name];
  return a?.type === 'string' ? a.value : fallback;
}
