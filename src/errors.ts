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

/**
 * A Failure raised as an exception, for deep call stacks where threading a Result through
 * every frame would bury the logic. Only {@link catchFailure} should catch it.
 */
export class FailureError extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'FailureError';
  }
}

/** Throws a {@link FailureError}; use inside code wrapped by {@link catchFailure}. */
export function raise(reason: FailureReason, message: string): never {
  throw new FailureError(reason, message);
}

/** Runs `body`, turning a thrown {@link FailureError} into a failed Result. Other errors propagate. */
export function catchFailure<T>(body: () => T): Result<T> {
  try {
    return ok(body());
  } catch (error: unknown) {
    if (error instanceof FailureError) return fail(error.reason, error.message);
    throw error;
  }
}

/** Async twin of {@link catchFailure}. */
export async function catchFailureAsync<T>(body: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await body());
  } catch (error: unknown) {
    if (error instanceof FailureError) return fail(error.reason, error.message);
    throw error;
  }
}

/** Unwraps a Result inside code wrapped by {@link catchFailure}: a failure is re-raised. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new FailureError(result.reason, result.message);
}

/** Marks code the type system proves unreachable; reaching it is our bug. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
