/**
 * {@link NetlinkError} and the one place where libnl codes and errno values
 * become exceptions.
 *
 * @module
 */

/**
 * libnl error codes (`netlink/errno.h`, 3.7), as positive numbers, for
 * callers that map `NetlinkError.nlCode` (e.g. `BUSY`/`AGAIN` to CNI code 11,
 * and `DUMP_INTR`: a list whose every attempt a change interrupted).
 */
export const NLE = {
  FAILURE: 1,
  INTR: 2,
  AGAIN: 4,
  NOMEM: 5,
  EXIST: 6,
  INVAL: 7,
  RANGE: 8,
  OPNOTSUPP: 10,
  OBJ_NOTFOUND: 12,
  NOADDR: 19,
  BUSY: 25,
  NOACCESS: 27,
  PERM: 28,
  NODEV: 31,
  DUMP_INTR: 33,
} as const;

/** Structured fields of a {@link NetlinkError}. */
export interface NetlinkErrorOptions {
  /** The libnl code (positive); 0 when a libc call failed. */
  nlCode: number;
  /** The libnl (or `strerror`) text. */
  nlMessage: string;
  /** The errno of a failed libc call. */
  errno?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failed netlink (libnl) or namespace (libc) operation.
 *
 * The message reads `Cannot <op> "<object>": <nlMessage>`. Callers usually
 * see it as the `cause` of a `Deno.errors.NotFound`, `AlreadyExists` or
 * `PermissionDenied`; other codes are thrown as is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetlinkError } from "@vnet/netlink";
 *
 * const e = new NetlinkError("add veth", "azv1", { nlCode: 6, nlMessage: "Object exists" });
 * assert.equal(e.message, 'Cannot add veth "azv1": Object exists');
 * ```
 */
export class NetlinkError extends Error {
  /** The failed operation, such as `add veth`. */
  readonly op: string;
  /** The object it was applied to, such as a link name. */
  readonly object: string;
  /** The libnl code (positive); 0 for a libc failure. */
  readonly nlCode: number;
  /** The libnl or libc message. */
  readonly nlMessage: string;
  /** The errno of a libc failure. */
  readonly errno: number | undefined;

  /**
   * Creates the error.
   *
   * @param op The operation, such as `set link up`.
   * @param object The object, such as `eth0`.
   * @param options The code and message.
   */
  constructor(op: string, object: string, options: NetlinkErrorOptions) {
    super(
      `Cannot ${op} "${object}": ${options.nlMessage}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "NetlinkError";
    this.op = op;
    this.object = object;
    this.nlCode = options.nlCode;
    this.nlMessage = options.nlMessage;
    this.errno = options.errno;
  }
}

const ERRNO_ENOENT = 2;
const ERRNO_EPERM = 1;
const ERRNO_EACCES = 13;
const ERRNO_EEXIST = 17;
const ERRNO_ENODEV = 19;

/**
 * Maps a {@link NetlinkError} to the Deno class for "absent", "exists" and
 * "not permitted", keeping it as `cause`; returns it unchanged otherwise.
 *
 * @param error The error to map.
 * @returns The error to throw.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapNetlinkError, NetlinkError, NLE } from "@vnet/netlink";
 *
 * const e = new NetlinkError("find link", "eth9", { nlCode: NLE.NODEV, nlMessage: "No such device" });
 * const mapped = mapNetlinkError(e);
 * assert.ok(mapped instanceof Deno.errors.NotFound);
 * assert.equal(mapped.cause, e);
 * ```
 */
export function mapNetlinkError(error: NetlinkError): Error {
  const { nlCode, errno } = error;
  if (
    nlCode === NLE.OBJ_NOTFOUND || nlCode === NLE.NODEV ||
    errno === ERRNO_ENOENT || errno === ERRNO_ENODEV
  ) {
    return new Deno.errors.NotFound(error.message, { cause: error });
  }
  if (nlCode === NLE.EXIST || errno === ERRNO_EEXIST) {
    return new Deno.errors.AlreadyExists(error.message, { cause: error });
  }
  if (
    nlCode === NLE.PERM || nlCode === NLE.NOACCESS ||
    errno === ERRNO_EPERM || errno === ERRNO_EACCES
  ) {
    return new Deno.errors.PermissionDenied(error.message, { cause: error });
  }
  return error;
}
