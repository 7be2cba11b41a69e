/**
 * A pipeline policy of the Azure SDK that retries GETs on 429, 5xx and no
 * answer: the reads a NIC update depends on (its long-running operation's
 * polls, the final GET) and the read that confirms what ARM has after an
 * update failed (#16). With the SDK's own retries off, one throttled poll
 * would otherwise fail an update that ARM applied. Other methods pass
 * through untouched: a PUT is never repeated here.
 *
 * @module
 */
import { isTransientStatus, parseRetryAfter } from "@vnet/azure";

/** The slice of a core-rest-pipeline request this policy reads. */
interface PolicyRequest {
  readonly method: string;
  readonly abortSignal?: { readonly aborted: boolean } | undefined;
}

/** The slice of a core-rest-pipeline response this policy reads. */
interface PolicyResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null | undefined };
}

/** Options of {@link readRetryPolicy}. */
export interface ReadRetryOptions {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** The first wait in ms; it doubles per retry (default 250). */
  readonly baseDelayMs?: number;
  /** The longest wait in ms, `Retry-After` included (default 10000). */
  readonly maxDelayMs?: number;
  /**
   * Told of each failed attempt that is retried (the last one reaches the
   * caller instead): its status, or the error when there was no answer.
   */
  readonly onRetry?: (attempt: RetriedAttempt) => void;
}

/** A failed attempt that {@link readRetryPolicy} retries. */
export type RetriedAttempt =
  | { readonly status: number }
  | { readonly error: unknown };

/** A core-rest-pipeline `PipelinePolicy`, in the types this file needs. */
export interface ReadRetryPolicy {
  readonly name: string;
  sendRequest<Req extends PolicyRequest, Res extends PolicyResponse>(
    request: Req,
    next: (request: Req) => Promise<Res>,
  ): Promise<Res>;
}

/** The policy's name in the pipeline. */
export const READ_RETRY_POLICY = "vnetReadRetryPolicy";

/**
 * Makes the policy; add it to a client's pipeline in phase `"Retry"`.
 *
 * @param options Retries and waits.
 * @returns The policy.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRetryPolicy } from "./_read_retry.ts";
 * const policy = readRetryPolicy({ retries: 2, baseDelayMs: 1 });
 * let calls = 0;
 * const res = await policy.sendRequest({ method: "GET" }, () =>
 *   Promise.resolve({ status: ++calls < 3 ? 503 : 200, headers: new Headers() }));
 * assert.equal(res.status, 200);
 * assert.equal(calls, 3);
 * ```
 */
export function readRetryPolicy(options: ReadRetryOptions): ReadRetryPolicy {
  const base = options.baseDelayMs ?? 250;
  const max = options.maxDelayMs ?? 10_000;
  return {
    name: READ_RETRY_POLICY,
    async sendRequest<Req extends PolicyRequest, Res extends PolicyResponse>(
      request: Req,
      next: (request: Req) => Promise<Res>,
    ): Promise<Res> {
      if (request.method !== "GET") return await next(request);
      for (let attempt = 0;; attempt++) {
        let response: Res | undefined;
        try {
          response = await next(request);
        } catch (error) {
          // No answer (the HTTP client throws only then), unless aborted.
          if (attempt >= options.retries || request.abortSignal?.aborted) {
            throw error;
          }
          options.onRetry?.({ error });
        }
        if (response !== undefined) {
          if (
            !isTransientStatus(response.status) || attempt >= options.retries
          ) return response;
          options.onRetry?.({ status: response.status });
        }
        const wait = Math.min(
          max,
          parseRetryAfter(
            response?.headers.get("retry-after") ?? null,
            Date.now(),
          ) ?? base * 2 ** attempt,
        );
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    },
  };
}
