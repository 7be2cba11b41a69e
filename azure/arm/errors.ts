/**
 * What can go wrong with an ARM call of `@vnet/arm`, as typed errors and as
 * the bounded result labels of `azure_vnet_arm_requests_total` (#16): a
 * stale etag (412, {@link ArmConflictError}) and the SDK's HTTP and network
 * failures ({@link classifyArmError}).
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

/** How an ARM request ended, as `azure_vnet_arm_requests_total` counts it. */
export type ArmResult =
  | "ok"
  | "throttled"
  | "server_error"
  | "client_error"
  | "conflict"
  | "network_error";

/** What {@link classifyArmError} makes of a failure. */
export interface ArmFailure {
  /** The metric's result label (a fixed set, whatever the error). */
  readonly result: Exclude<ArmResult, "ok">;
  /** The HTTP status, when ARM answered. */
  readonly status?: number;
  /** ARM's `Retry-After`, in ms, when it sent one. */
  readonly retryAfterMs?: number;
  /** 429, 5xx and no answer may heal; other 4xx will not by waiting. */
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
 * Classifies an SDK error (`RestError`: `statusCode`, `response.headers`)
 * or this member's {@link ArmConflictError}.
 *
 * @param err What the SDK threw.
 * @returns The result label, status, `Retry-After` and transience.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyArmError } from "./errors.ts";
 * const err = Object.assign(new Error("busy"), {
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
  const e = err as {
    statusCode?: unknown;
    response?: { headers?: { get?(name: string): string | null | undefined } };
  } | null;
  const status = typeof e?.statusCode === "number" ? e.statusCode : undefined;
  if (status === undefined) return { result: "network_error", transient: true };
  const header = e?.response?.headers?.get?.("retry-after") ?? null;
  const retryAfterMs = parseRetryAfter(header, Date.now());
  return {
    ...byStatus(status),
    status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}
