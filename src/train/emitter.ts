/** @file Step-graph builder: collision-free names, shared constants, ops emitted once per call. */
import { GraphBuilder, float, type AttributeInput, type NodeOptions } from '../onnx/builder.js';
import { float32Tensor, int64Tensor } from '../onnx/tensor.js';

/** The batch and spatial axes of an NCHW tensor: what per-channel statistics reduce over. */
export const AXES_NHW = [0, 2, 3];

/** A builder whose generated names cannot collide with the forward graph's copied names. */
export class StepBuilder extends GraphBuilder {
  override node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    options: NodeOptions = {},
  ): string[] {
    return super.node(opType, inputs, attributes, {
      ...options,
      name: options.name ?? this.fresh(`step/${opType.toLowerCase()}`),
    });
  }
}

/** Small helpers over the builder for constants and common patterns. */
export class Emitter {
  private readonly constants = new Map<string, string>();
  private readonly sharedOps = new Map<string, string>();
  constructor(readonly b: GraphBuilder) {}

  /** A float32 scalar constant (shared by value). */
  scalar(value: number): string {
    return this.cached(`f:${value}`, () =>
      this.b.weight(`step/const${this.constants.size}`, float32Tensor([], Float32Array.of(value))),
    );
  }

  /** A float32 constant vector. */
  vector(values: readonly number[]): string {
    return this.cached(`v:${values.join(',')}`, () =>
      this.b.weight(
        `step/const${this.constants.size}`,
        float32Tensor([values.length], Float32Array.from(values)),
      ),
    );
  }

  /** An int64 constant vector (axes, shapes, pads). */
  ints(values: readonly number[]): string {
    return this.cached(`i:${values.join(',')}`, () =>
      this.b.weight(`step/const${this.constants.size}`, int64Tensor([values.length], values)),
    );
  }

  /** `x` with shape `dims`. */
  reshape(x: string, dims: readonly number[]): string {
    return this.shared('Reshape', [x, this.ints(dims)]);
  }

  /**
   * One output of `opType` on `inputs`, emitted once per distinct call: names are never
   * reassigned, so equal calls compute equal tensors. Convs that read the same tensor (a
   * stage's first conv and its projection shortcut) then share its reorders, transposes and
   * padded copies instead of each making its own.
   */
  shared(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    domain?: string,
  ): string {
    const key = `${domain ?? ''}|${opType}|${inputs.join(',')}|${JSON.stringify(attributes)}`;
    let name = this.sharedOps.get(key);
    if (name === undefined) {
      name = this.b.node(opType, inputs, attributes, domain === undefined ? {} : { domain })[0]!;
      this.sharedOps.set(key, name);
    }
    return name;
  }

  /** `scale * x + bias` per channel of an NCHW tensor, in one pass (BatchNormalization with mean 0, var 1, eps 0). */
  channelAffine(x: string, scale: string, bias: string, channels: number): string {
    return this.b.op(
      'BatchNormalization',
      [
        x,
        scale,
        bias,
        this.vector(new Array<number>(channels).fill(0)),
        this.vector(new Array<number>(channels).fill(1)),
      ],
      {
        epsilon: float(0),
      },
    );
  }

  private cached(key: string, make: () => string): string {
    let name = this.constants.get(key);
    if (name === undefined) {
      name = make();
      this.constants.set(key, name);
    }
    return name;
  }
}
