/**
 * CNI error codes and the {@link CniError} class.
 *
 * Codes 1-11 and 50/51 are the spec's; 999 is the reference library's
 * "internal error". Our own codes start at 100 and are all listed in
 * {@link PLUGIN_CODES}.
 *
 * @module
 */

/** The error codes of the CNI specification and of our plugins. */
export const CODES = {
  /** Incompatible CNI version. */
  incompatibleVersion: 1,
  /** Unsupported field in the network configuration. */
  unsupportedField: 2,
  /** Container unknown or does not exist. */
  unknownContainer: 3,
  /** Invalid necessary environment variables. */
  invalidEnvironment: 4,
  /** I/O failure. */
  ioFailure: 5,
  /** Failed to decode content. */
  decodeFailure: 6,
  /** Invalid network configuration. */
  invalidConfig: 7,
  /** Try again later. */
  tryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD. */
  notAvailable: 50,
  /** STATUS: not available, existing containers may be affected. */
  notAvailableLimited: 51,
  /** Internal error (an unexpected exception). */
  internal: 999,
} as const;

/** Plugin-specific codes (100 and up): one table for the whole project. */
export const PLUGIN_CODES = {
  /** The IPAM pool has no free address. */
  poolExhausted: 100,
  /** The address source (wireserver, IMDS) failed and no state exists. */
  sourceFailed: 101,
  /** A state file cannot be parsed; it names the file and the recovery. */
  corruptState: 102,
  /** A kernel (netlink) operation failed. */
  netlinkFailed: 103,
  /** An ebtables command failed. */
  ebtablesFailed: 104,
  /** The interface already exists in the container. */
  interfaceExists: 105,
  /** CHECK found the attachment different from what was recorded. */
  checkFailed: 106,
  /** A requested address is not in any pool or held by someone else. */
  addressUnavailable: 107,
  /** The master interface cannot be found. */
  masterNotFound: 108,
  /** A delegated plugin failed without a parsable error. */
  delegateFailed: 109,
} as const;

/** Any code we emit. */
export type CniErrorCode =
  | (typeof CODES)[keyof typeof CODES]
  | (typeof PLUGIN_CODES)[keyof typeof PLUGIN_CODES]
  | number;

/** Options of {@link CniError}. */
export interface CniErrorOptions {
  /** Longer detail for `details`; defaults to the flattened cause chain. */
  details?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A failure that skel prints as the CNI error object.
 *
 * `message` becomes `msg`; `details` defaults to the flattened `cause` chain.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CniError } from "./errors.ts";
 * const err = new CniError(7, "Invalid network config: field \"name\" is missing");
 * assert.equal(err.code, 7);
 * assert.deepEqual(err.toJSON("1.0.0"), {
 *   cniVersion: "1.0.0",
 *   code: 7,
 *   msg: "Invalid network config: field \"name\" is missing",
 * });
 * ```
 */
export class CniError extends Error {
  /** The CNI error code. */
  readonly code: CniErrorCode;
  /** Longer detail, or undefined. */
  readonly details: string | undefined;

  /**
   * Creates a CNI error.
   *
   * @param code The CNI code.
   * @param msg The message (`msg` on the wire).
   * @param options Details and cause.
   */
  constructor(code: CniErrorCode, msg: string, options: CniErrorOptions = {}) {
    super(msg, options.cause === undefined ? {} : { cause: options.cause });
    this.name = "CniError";
    this.code = code;
    this.details = options.details ??
      (options.cause === undefined ? undefined : flattenCause(options.cause));
  }

  /**
   * The wire form of the error.
   *
   * @param cniVersion The version to put in the object.
   * @returns `{cniVersion, code, msg, details?}`.
   */
  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = {
      cniVersion,
      code: this.code,
      msg: this.message,
    };
    if (this.details !== undefined && this.details !== "") {
      out.details = this.details;
    }
    return out;
  }
}

/**
 * Flattens an error and its `cause` chain (and `AggregateError` members) into
 * one line of text: `a: b: c`.
 *
 * @param err Any thrown value.
 * @returns The joined messages.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { flattenCause } from "./errors.ts";
 * const err = new Error("Cannot add veth", { cause: new Error("exists") });
 * assert.equal(flattenCause(err), "Cannot add veth: exists");
 * ```
 */
export function flattenCause(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (
    let depth = 0;
    cur !== undefined && cur !== null && depth < 16;
    depth++
  ) {
    if (cur instanceof AggregateError) {
      parts.push(
        `${cur.message} [${cur.errors.map((e) => flattenCause(e)).join("; ")}]`,
      );
    } else if (cur instanceof Error) {
      parts.push(cur.message);
    } else {
      parts.push(describeValue(cur));
      break;
    }
    cur = (cur as Error).cause;
  }
  return parts.filter((p) => p !== "").join(": ");
}

/** Text for a thrown non-Error: its `message` if any, else compact JSON. */
function describeValue(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    const msg = (value as { message?: unknown }).message;
    if (typeof msg === "string") return msg;
    try {
      return JSON.stringify(value).slice(0, 500);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}
