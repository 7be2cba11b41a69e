/**
 * The plugin's own error mapping: kernel failures become CNI errors, 11 (try
 * again later) when netlink says the kernel was busy or a dump kept being
 * interrupted by changes, else 103; several independent failures become one
 * error.
 *
 * @module
 */
import { CniError, CODES, flattenCause, PLUGIN_CODES } from "@vnet/cni";
import { NetlinkError, NLE } from "@vnet/netlink";

/** libnl codes that mean "try again later". */
const TRANSIENT: ReadonlySet<number> = new Set([
  NLE.AGAIN,
  NLE.BUSY,
  NLE.DUMP_INTR, // a dump interrupted by changes, every attempt
]);

/**
 * True when a `NetlinkError` with `NLE_AGAIN`, `NLE_BUSY` or
 * `NLE_DUMP_INTR` is in the cause chain.
 */
function isTransientKernel(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 16 && e instanceof Error; depth++) {
    if (e instanceof NetlinkError && TRANSIENT.has(e.nlCode)) return true;
    e = e.cause;
  }
  return false;
}

/**
 * Wraps a non-CniError into a CniError: 11 (try again later) when a
 * `NetlinkError` with `NLE_AGAIN`, `NLE_BUSY` or `NLE_DUMP_INTR` (a list
 * whose every attempt a change interrupted) is in its cause chain, else 103
 * (kernel failure).
 *
 * @param msg The message.
 * @param err The failure (kept as `cause`).
 * @returns A CniError.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetlinkError, NLE } from "@vnet/netlink";
 * import { wrapKernel } from "./errors.ts";
 * const busy = new NetlinkError("add link", "azure0", {
 *   nlCode: NLE.BUSY,
 *   nlMessage: "Device or resource busy",
 * });
 * assert.equal(wrapKernel("Cannot create network", busy).code, 11);
 * assert.equal(wrapKernel("Cannot create network", new Error("x")).code, 103);
 * ```
 */
export function wrapKernel(msg: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  const code = isTransientKernel(err)
    ? CODES.tryAgainLater
    : PLUGIN_CODES.netlinkFailed;
  return new CniError(code, msg, { cause: err });
}

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
