/**
 * Bounded retries for Azure HTTP calls: 429, 5xx, network failures and
 * timeouts are retried with exponential backoff that honours `Retry-After`
 * (a caller may name more transient statuses: IMDS adds 404 and 410).
 * Every attempt (including reading the body) runs under its own
 * `AbortSignal.timeout`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { AzureHttpError } from "./errors.ts";

const logger = getLogger(["vnet", "azure", "retry"]);

/** A `fetch`-compatible function (injectable for tests). */
export type FetchFn = (
  input: string | URL | Request,
  init?: RequestInit,
) => Promise<Response>;

/** Knobs shared by every client of this package. */
export interface RetryOptions {
  /** `fetch` to use (default: the global one). */
  fetch?: FetchFn | undefined;
  /** Per-attempt timeout in ms, body included (default 5000). */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt (default 2). */
  retries?: number | undefined;
  /** Sleep between attempts (default: a timer). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Clock in epoch ms, for HTTP-date `Retry-After` (default `Date.now`). */
  now?: (() => number) | undefined;
  /** First backoff delay in ms, doubled per attempt (default 250). */
  baseDelayMs?: number | undefined;
  /** Upper bound of any delay, `Retry-After` included (default 10000). */
  maxDelayMs?: number | undefined;
}

/** A response whose body was read inside the attempt's timeout. */
export interface FetchedText {
  /** The response (its body is already consumed). */
  response: Response;
  /** The body text. */
  body: string;
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Whether an HTTP status is worth retrying: 429 and every 5xx.
 *
 * @param status The HTTP status.
 * @returns True for 429 and 500..599.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTransientStatus } from "./retry.ts";
 *
 * assert.equal(isTransientStatus(503), true);
 * assert.equal(isTransientStatus(404), false);
 * ```
 */
export function isTransientStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/**
 * Parses a `Retry-After` value (delta seconds or HTTP date) into ms.
 *
 * @param value The header value, or null.
 * @param now The current time in epoch ms.
 * @returns The delay in ms (never negative), or undefined when absent or
 *   unparsable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRetryAfter } from "./retry.ts";
 *
 * assert.equal(parseRetryAfter("2", 0), 2000);
 * assert.equal(parseRetryAfter(null, 0), undefined);
 * ```
 */
export function parseRetryAfter(
  value: string | null,
  now: number,
): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Extracts the service's error code from an XML (`<Code>`) or JSON
 * (`{"error":{"code"}}` or `{"error":"…"}`) error body.
 *
 * @param body The response body.
 * @returns The code, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { serviceCodeOf } from "./retry.ts";
 *
 * assert.equal(serviceCodeOf("<Error><Code>InternalError</Code></Error>"), "InternalError");
 * assert.equal(serviceCodeOf('{"error":{"code":"SubnetIsFull"}}'), "SubnetIsFull");
 * ```
 */
export function serviceCodeOf(body: string): string | undefined {
  const xml = /<Code>\s*([^<]+?)\s*<\/Code>/.exec(body);
  if (xml?.[1] !== undefined) return xml[1];
  try {
    const doc: unknown = JSON.parse(body);
    if (typeof doc !== "object" || doc === null) return undefined;
    const error = (doc as Record<string, unknown>).error;
    if (typeof error === "string") return error;
    if (typeof error === "object" && error !== null) {
      const code = (error as Record<string, unknown>).code;
      if (typeof code === "string") return code;
    }
  } catch {
    // not JSON: no code
  }
  return undefined;
}

/**
 * GETs (or sends `init`) with bounded retries and returns the body text of
 * the first 2xx response.
 *
 * Retries 429, 5xx (or what `isTransient` accepts), network failures and
 * timeouts up to `retries` times, sleeping `Retry-After` when given, else
 * `baseDelayMs * 2^attempt`, capped by `maxDelayMs`. Any other non-2xx
 * status fails at once.
 *
 * @param url The URL.
 * @param options `init` for the request, `isTransient` (which statuses are
 *   worth retrying; default {@linkcode isTransientStatus}) plus
 *   {@linkcode RetryOptions}.
 * @returns The response and its body text.
 * @throws {AzureHttpError} On a non-2xx status or a network failure/timeout
 *   (status 0) after the last attempt; `transient` tells which kind.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fetchText } from "./retry.ts";
 *
 * let calls = 0;
 * function fakeFetch(): Promise<Response> {
 *   calls++;
 *   const status = calls === 1 ? 503 : 200;
 *   return Promise.resolve(new Response("ok", { status }));
 * }
 * const { body } = await fetchText("http://127.0.0.1:9/", {
 *   fetch: fakeFetch,
 *   sleep: () => Promise.resolve(),
 * });
 * assert.equal(body, "ok");
 * assert.equal(calls, 2);
 * ```
 */
export async function fetchText(
  url: string,
  options: RetryOptions & {
    init?: RequestInit;
    isTransient?: (status: number) => boolean;
  } = {},
): Promise<FetchedText> {
  const doFetch = options.fetch ?? fetch;
  const isTransient = options.isTransient ?? isTransientStatus;
  const retries = options.retries ?? 2;
  const timeoutMs = options.timeoutMs ?? 5000;
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? Date.now;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new RangeError(`Cannot fetch: retries must be >= 0, got ${retries}`);
  }
  for (let attempt = 0;; attempt++) {
    let error: AzureHttpError;
    let retryAfter: number | undefined;
    try {
      const signal = AbortSignal.timeout(timeoutMs);
      const response = await doFetch(url, { ...options.init, signal });
      const body = await response.text();
      if (response.ok) return { response, body };
      const requestId = response.headers.get("x-ms-request-id") ?? undefined;
      error = new AzureHttpError(
        `Cannot get "${url}": HTTP ${response.status}`,
        {
          status: response.status,
          url,
          serviceCode: serviceCodeOf(body),
          requestId,
          transient: isTransient(response.status),
        },
      );
      retryAfter = parseRetryAfter(response.headers.get("retry-after"), now());
    } catch (cause) {
      const timedOut = cause instanceof DOMException &&
        (cause.name === "TimeoutError" || cause.name === "AbortError");
      error = new AzureHttpError(
        timedOut
          ? `Cannot get "${url}": timed out after ${timeoutMs} ms`
          : `Cannot get "${url}": network failure`,
        { status: 0, url, transient: true, cause },
      );
    }
    if (!error.transient || attempt >= retries) throw error;
    const delay = Math.min(
      maxDelayMs,
      retryAfter ?? baseDelayMs * 2 ** attempt,
    );
    logger.warn(
      "Retrying {url} in {delay} ms after {status} (attempt {attempt})",
      { url, delay, status: error.status, attempt: attempt + 1 },
    );
    await sleep(delay);
  }
}
