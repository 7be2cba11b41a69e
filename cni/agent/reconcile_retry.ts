/**
 * The agent's startup reconcile and its retries (#14). The reconcile (GC
 * of leftovers: `reconcileState` of `@vnet/azure-vnet`) runs once before
 * the agent listens. If it fails (a state lock held past its wait, a
 * corrupt state file until `deno task state repair`, a kernel error), the
 * agent serves anyway, is not ready (`readiness.ts`, condition
 * `reconcile`) and tries again while it serves, after 5, 10, 20, 40, 80,
 * 160 s and then every 300 s, until one succeeds. A retry runs beside the
 * requests, as the state tool's `gc` does on a live node: the reconcile
 * leaves what an ADD or DEL holding its attachment's lock has made.
 *
 * @module
 */
import type { Readiness } from "./readiness.ts";

/** The waits before each retry, in ms; the last one repeats. */
export const RECONCILE_RETRY_MS: readonly number[] = [
  5_000,
  10_000,
  20_000,
  40_000,
  80_000,
  160_000,
  300_000,
];

/** The readiness condition of a failed reconcile. */
export const RECONCILE_CONDITION = "reconcile";

/** Options of {@link ReconcileRetry}. */
export interface ReconcileRetryOptions {
  /** Runs the reconcile once; throws when it failed. */
  readonly reconcile: () => Promise<void>;
  /** Gets the `reconcile` condition while it has failed. */
  readonly readiness: Readiness;
  /** The waits before each retry (default {@link RECONCILE_RETRY_MS}). */
  readonly delaysMs?: readonly number[];
  /** Told of each failure (the try, from 1) and the wait before the next. */
  readonly onFailure?: (failure: {
    tries: number;
    error: unknown;
    nextMs: number;
  }) => void;
  /** Told when a retry succeeded, after that many tries. */
  readonly onRecovered?: (tries: number) => void;
}

/**
 * Runs the reconcile, and again after a failure until it succeeds.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Readiness } from "./readiness.ts";
 * import { ReconcileRetry } from "./reconcile_retry.ts";
 * const readiness = new Readiness();
 * let tries = 0;
 * const retry = new ReconcileRetry({
 *   reconcile: () => ++tries === 1 ? Promise.reject(new Error("busy")) : Promise.resolve(),
 *   readiness,
 *   delaysMs: [1],
 * });
 * await retry.start();
 * assert.match(readiness.reason ?? "", /reconcile: .*busy/);
 * await new Promise((r) => setTimeout(r, 20));
 * assert.ok(readiness.ready);
 * await retry.close();
 * ```
 */
export class ReconcileRetry {
  #options: ReconcileRetryOptions;
  #tries = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  /**
   * Prepares the retries; nothing runs before {@link ReconcileRetry.start}.
   *
   * @param options The reconcile, the readiness and the waits.
   */
  constructor(options: ReconcileRetryOptions) {
    this.#options = options;
  }

  /**
   * Runs the first reconcile. It never throws: a failure marks the agent
   * not ready and schedules the next try.
   *
   * @returns When the first try ended.
   */
  start(): Promise<void> {
    return this.#try();
  }

  #try(): Promise<void> {
    this.#timer = undefined;
    this.#running = (async () => {
      this.#tries++;
      try {
        await this.#options.reconcile();
      } catch (error) {
        if (this.#closed) return;
        const delays = this.#options.delaysMs ?? RECONCILE_RETRY_MS;
        const nextMs = delays[Math.min(this.#tries, delays.length) - 1] ??
          300_000;
        this.#options.readiness.fail(
          RECONCILE_CONDITION,
          `the startup reconcile failed (${
            error instanceof Error ? error.message : String(error)
          }) after ${this.#tries} tries; the next in ${nextMs / 1000} s`,
        );
        this.#options.onFailure?.({ tries: this.#tries, error, nextMs });
        this.#timer = setTimeout(() => void this.#try(), nextMs);
        return;
      }
      if (this.#tries > 1) this.#options.onRecovered?.(this.#tries);
      this.#options.readiness.clear(RECONCILE_CONDITION);
    })();
    return this.#running;
  }

  /**
   * Stops the retries and waits for one under way.
   *
   * @returns When no reconcile runs.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
