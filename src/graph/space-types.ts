/** @file The types of a feature-space analysis (re-exported by spaces.ts, which computes them). */

/** `width` channels of space `space`, each repeated `repeat` times consecutively (a flatten of h x w gives h*w). */
export interface Segment {
  readonly space: number;
  readonly width: number;
  readonly repeat: number;
}

/** How a value's channel axis is made of spaces: one segment, or several after a channel Concat. */
export interface ChannelLayout {
  /** The channel axis of the value (1 for NCHW and [N, C]; the last axis after MatMul). */
  readonly axis: number;
  readonly segments: readonly Segment[];
  /**
   * Attention's split of the channels into heads ([N, T, C] reshaped to [N, T, h, d]): channel
   * c = head * d + j sits at index `head` of axis `heads.axis` and j of `axis`. One segment,
   * whose space is grouped into `count` heads.
   */
  readonly heads?: { readonly axis: number; readonly count: number };
}

/**
 * How an initializer is transformed by a merge: along `axis`, `rows` applies each segment's merge
 * matrix M_k (the parameter lives on that space, e.g. output channels, biases, BN statistics);
 * `columns` applies each segment's unmerge U_k (input channels of a consumer).
 */
export interface ParamBinding {
  readonly initializer: string;
  readonly axis: number;
  readonly role: 'rows' | 'columns';
  readonly segments: readonly Segment[];
}

/** Kinds of space as `zipit inspect` prints them. */
export type SpaceKind = 'plain' | 'residual' | 'fixed';

/** One feature space: channels that must be transformed together. */
export interface FeatureSpace {
  /** Position in graph order (by first producer); what `--stop-at` and the stats file use. */
  readonly id: number;
  readonly width: number;
  readonly kind: SpaceKind;
  /** Why a fixed space is fixed: the graph input, a graph output, or an op merging cannot pass. */
  readonly fixedBy?: string;
  /** Nodes writing the space (weight ops) and reading it (weight ops' input channels). */
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  /** Per-channel parameters on the space (BN, LN, biases, per-channel constants). */
  readonly parameters: readonly string[];
  /**
   * Where activations are measured: value name, the channel offset of the space in it, and its
   * channel axis when not 1 (the last axis of a transformer's [N, T, C] tokens).
   */
  readonly site?: { readonly value: string; readonly offset: number; readonly axis?: number };
  /**
   * Further sites whose observations count as the space's too: a Q/K space is read on its
   * queries (`site`) and its keys, every (token, role) an observation.
   */
  readonly alsoAt?: readonly {
    readonly value: string;
    readonly offset: number;
    readonly axis?: number;
  }[];
  /** Values carrying exactly this space on their channel axis (for REPAIR and partial zipping). */
  readonly producerOutputs: readonly string[];
  /**
   * Attention heads: the channels are `groups` consecutive blocks (one per head), and a merge
   * may only map a block onto the same block (absent: one block).
   */
  readonly groups?: number;
}

/** A channel concatenation: its output is the direct sum of its inputs' spaces. */
export interface ConcatSpace {
  readonly node: string;
  readonly value: string;
  readonly parts: readonly number[];
}

/** The result of the analysis for one model. */
export interface SpaceAnalysis {
  readonly spaces: readonly FeatureSpace[];
  readonly concats: readonly ConcatSpace[];
  readonly bindings: readonly ParamBinding[];
  /** Layout of every activation value (by name) whose channels are spaces. */
  readonly layouts: ReadonlyMap<string, ChannelLayout>;
  /**
   * Each multi-head attention: its Q/K space and its V space, whose heads correspond (head h's
   * scores weigh head h's values), so a reordering of heads must apply to both.
   */
  readonly attention: readonly {
    readonly queryKey: number;
    readonly value: number;
    /** The scores meet something indexed by head (a per-head bias, a graph output): heads stay in place. */
    readonly inPlace?: boolean;
  }[];
}
