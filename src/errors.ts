/** @file Errors as data: a `Result` for the user's mistakes, `unreachable` for our bugs. */

/**
 * Every way a user's input can be wrong. `reason` is a stable kebab-case tag that tests and
 * callers switch on; `message` is the one line the CLI prints (what is wrong and what to do).
 */
export interface Failure {
  readonly reason: FailureReason;
  readonly message: string;
}

/** The stable tags of {@link Failure}. Add one here when a new kind of user error appears. */
export type FailureReason =
  | 'not-onnx'
  | 'truncated'
  | 'external-data'
  | 'unsupported-op'
  | 'unsupported-model'
  | 'bad-shape'
  | 'file-not-found'
  | 'file-unreadable'
  | 'unwritable-output'
  | 'bad-dataset'
  | 'bad-argument'
  | 'structure-mismatch'
  | 'bad-statistics'
  | 'out-of-memory'
  | 'runtime-error';

/** Success with a value, or a {@link Failure}. */
export type Result<T> =
  { readonly ok: true; readonly value: T } | ({ readonly ok: false } & Failure);

/** Wraps a value as a successful {@link Result}. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** Builds a failed {@link Result}. */
export function fail<T = never>(reason: FailureReason, message: string): Result<T> {
  return { ok: false, reason, message };
}

/** The first line of a thrown value's message: onnxruntime's own messages run to many lines. */
export function errorFirstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/**
 * An exception from onnxruntime as a `runtime-error` Failure: `context` says what we were doing
 * ("onnxruntime failed while collecting statistics"), the error's first line says why.
 */
export function runtimeFailure(context: string, error: unknown): Result<never> {
  return fail('runtime-error', `${context}: ${errorFirstLine(error)}`);
}

/** Marks code the type system proves unreachable; reaching it is our bug. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
