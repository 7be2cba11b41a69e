/**
 * The plugin's error helpers.
 *
 * @module
 */
import { CniError, CODES, flattenCause } from "@vnet/cni";

/**
 * One error for several independent failures: the single CniError as is,
 * else an error carrying the first CniError's code (or 999) with every
 * failure as its cause and in its details.
 *
 * @param errors The failures (at least one).
 * @param msg What could not be done.
 * @returns The error to throw.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CniError } from "@vnet/cni";
 * import { combineErrors } from "./errors.ts";
 * const err = combineErrors(
 *   [new Error("a"), new CniError(104, "b")],
 *   "Cannot delete",
 * );
 * assert.equal(err.code, 104);
 * ```
 */
export function combineErrors(errors: unknown[], msg: string): CniError {
  if (errors.length === 1 && errors[0] instanceof CniError) return errors[0];
  const first = errors.find((e) => e instanceof CniError) as
    | CniError
    | undefined;
  const agg = new AggregateError(errors, msg);
  return new CniError(first?.code ?? CODES.internal, msg, {
    cause: agg,
    details: flattenCause(agg),
  });
}
