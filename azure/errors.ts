/**
 * The one domain error of `@vnet/azure`: an HTTP exchange with an Azure
 * endpoint that failed.
 *
 * @module
 */

/** Fields of an {@linkcode AzureHttpError}. */
export interface AzureHttpErrorOptions {
  /** HTTP status, or 0 for a network failure or a timeout. */
  status: number;
  /** The URL that was requested. */
  url: string;
  /** The service's own error code (`<Code>` or `error.code`), if any. */
  serviceCode?: string | undefined;
  /** `x-ms-request-id` of the response, if any. */
  requestId?: string | undefined;
  /**
   * True when a retry may succeed (429, 5xx, network failure, timeout; from
   * IMDS also 404 and 410).
   */
  transient: boolean;
  /** The underlying failure. */
  cause?: unknown;
}

/**
 * An Azure endpoint answered with an error status, or could not be reached.
 *
 * `status` is 0 for a network failure or a timeout. `transient` says whether
 * the failure is worth retrying (CNI code 11).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AzureHttpError } from "./errors.ts";
 *
 * const err = new AzureHttpError("Cannot get interface info: HTTP 500", {
 *   status: 500,
 *   url: "http://127.0.0.1/",
 *   transient: true,
 * });
 * assert.equal(err.name, "AzureHttpError");
 * assert.equal(err.transient, true);
 * ```
 */
export class AzureHttpError extends Error {
  override name = "AzureHttpError";
  /** HTTP status, or 0 for a network failure or a timeout. */
  readonly status: number;
  /** The requested URL. */
  readonly url: string;
  /** The service's error code, if the body carried one. */
  readonly serviceCode: string | undefined;
  /** The response's `x-ms-request-id`, if any. */
  readonly requestId: string | undefined;
  /** True for 429, 5xx, network failures and timeouts (IMDS: 404, 410). */
  readonly transient: boolean;

  /**
   * Creates the error.
   *
   * @param message Sentence-case message naming the failed action.
   * @param options Status, URL, service code, request id, transient, cause.
   */
  constructor(message: string, options: AzureHttpErrorOptions) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.status = options.status;
    this.url = options.url;
    this.serviceCode = options.serviceCode;
    this.requestId = options.requestId;
    this.transient = options.transient;
  }
}
