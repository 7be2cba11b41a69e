/**
 * What can go wrong with an ARM call of `@vnet/arm`, as typed errors and as
 * the bounded result labels of `azure_vnet_arm_requests_total` (#16): a
 * stale etag (412, {@link ArmConflictError}), an operation that ARM
 * accepted and then failed ({@link ArmOperationError}, e.g. `SubnetIsFull`),
 * and the SDK's HTTP and network failures ({@link classifyArmError}).
 *
 * @module
 */
import { parseRetryAfter } from "@vnet/azure";

/**
 * A NIC update refused with 412: the NIC changed since the GET whose etag
 * it sent in `If-Match` (another writer: the NIC tool, the portal). Nothing
 * was applied; read the NIC again and plan again.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArmConflictError } from "./errors.ts";
 * const err = new ArmConflictError("nic0", { etag: 'W/"1"' });
 * assert.equal(err.status, 412);
 * assert.match(err.message, /changed since it was read/);
 * ```
 */
export class ArmConflictError extends Error {
  override name = "ArmConflictError";
  /** Always 412 (Precondition Failed). */
  readonly status = 412;
  /** The etag sent in `If-Match`. */
  readonly etag: string;

  /**
   * Creates the error.
   *
   * @param nic The NIC's name.
   * @param options The etag sent and the SDK's error.
   */
  constructor(nic: string, options: { etag: string; cause?: unknown }) {
    super(
      `Cannot update NIC "${nic}": it changed since it was read (etag ${options.etag} no longer matches)`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.etag = options.etag;
  }
}

/**
 * A long-running NIC update that ARM accepted and then reported failed
 * (`{"status":"Failed","error":{"code":"SubnetIsFull",...}}`), which the
 * SDK throws as a plain `Error` without a status.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArmOperationError } from "./errors.ts";
 * const err = new ArmOperationError("nic0", {
 *   cause: new Error("The long-running operation has failed. SubnetIsFull. No room"),
 * });
 * assert.equal(err.code, "SubnetIsFull");
 * ```
 */
export class ArmOperationError extends Error {
  override name = "ArmOperationError";
  /** ARM's error code (`SubnetIsFull`...), or `"Failed"` when it sent none. */
  readonly code: string;

  /**
   * Creates the error from the SDK's.
   *
   * @param nic The NIC's name.
   * @param options The SDK's error (its message carries ARM's code).
   */
  constructor(nic: string, options: { cause: unknown }) {
    const text = options.cause instanceof Error
      ? options.cause.message
      : String(options.cause);
    const code = /^The long-running operation has failed\. ([\w.]+)\./
      .exec(text)?.[1] ?? "Failed";
    super(`Cannot update NIC "${nic}": ARM failed the operation (${code})`, {
      cause: options.cause,
    });
    this.code = code;
  }
}

/** How an ARM request ended, as `azure_vnet_arm_requests_total` counts it. */
export type ArmResult =
  | "ok"
  | "throttled"
  | "server_error"
  | "client_error"
  | "conflict"
  | "operation_failed"
  | "auth_error"
  | "imds_error"
  | "network_error"
  | "other_error";

/** What {@link classifyArmError} makes of a failure. */
export interface ArmFailure {
  /** The metric's result label (a fixed set, whatever the error). */
  readonly result: Exclude<ArmResult, "ok">;
  /** The HTTP status, when ARM (or IMDS) answered. */
  readonly status?: number;
  /** ARM's error code (`AuthorizationFailed`, `SubnetIsFull`...), if any. */
  readonly code?: string;
  /** ARM's `Retry-After`, in ms, when it sent one. */
  readonly retryAfterMs?: number;
  /**
   * 429, 5xx and no answer may heal by waiting; other 4xx, a failed
   * operation and our own errors (no NIC found) will not.
   */
  readonly transient: boolean;
}

/** The labels of an answer with an HTTP status. */
function byStatus(
  status: number,
): { result: ArmFailure["result"]; transient: boolean } {
  if (status === 429) return { result: "throttled", transient: true };
  if (status >= 500) return { result: "server_error", transient: true };
  if (status === 412) return { result: "conflict", transient: true };
  return { result: "client_error", transient: false };
}

/**
 * Classifies what an ARM call threw: the SDK's `RestError` (`statusCode`,
 * `code`, `response.headers`; without a status it never got an answer),
 * the identity library's token errors, IMDS's `AzureHttpError` (the NIC's
 * discovery), and this member's {@link ArmConflictError} and
 * {@link ArmOperationError}. Anything else is `other_error`, not transient.
 *
 * @param err What was thrown.
 * @returns The result label, status, ARM code, `Retry-After`, transience.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyArmError } from "./errors.ts";
 * const err = Object.assign(new Error("busy"), {
 *   name: "RestError",
 *   statusCode: 429,
 *   response: { headers: new Headers({ "retry-after": "2" }) },
 * });
 * assert.deepEqual(classifyArmError(err),
 *   { result: "throttled", status: 429, retryAfterMs: 2000, transient: true });
 * ```
 */
export function classifyArmError(err: unknown): ArmFailure {
  if (err instanceof ArmConflictError) {
    return { result: "conflict", status: 412, transient: true };
  }
  if (err instanceof ArmOperationError) {
    return { result: "operation_failed", code: err.code, transient: false };
  }
  const e = err as {
    name?: unknown;
    statusCode?: unknown;
    status?: unknown;
    code?: unknown;
    transient?: unknown;
    response?: { headers?: { get?(name: string): string | null | undefined } };
  } | null;
  const name = typeof e?.name === "string" ? e.name : "";
  const code = typeof e?.code === "string" && /^[A-Z][\w.]*$/.test(e.code)
    ? { code: e.code }
    : {};
  if (name === "AzureHttpError") {
    // IMDS (`@vnet/azure`): status 0 is no answer.
    const status = typeof e?.status === "number" ? e.status : 0;
    return {
      result: "imds_error",
      ...(status === 0 ? {} : { status }),
      transient: e?.transient === true,
    };
  }
  const status = typeof e?.statusCode === "number" ? e.statusCode : undefined;
  if (name === "CredentialUnavailableError" || name === "AuthenticationError") {
    return {
      result: "auth_error",
      ...(status === undefined ? {} : { status }),
      transient: status === undefined || byStatus(status).transient,
    };
  }
  if (status === undefined) {
    // A RestError without a status, a fetch TypeError, an abort: no answer.
    const noAnswer = name === "RestError" || name === "AbortError" ||
      name === "TimeoutError" || err instanceof TypeError;
    return noAnswer
      ? { result: "network_error", transient: true }
      : { result: "other_error", transient: false };
  }
  const header = e?.response?.headers?.get?.("retry-after") ?? null;
  const retryAfterMs = parseRetryAfter(header, Date.now());
  return {
    ...byStatus(status),
    status,
    ...code,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}
