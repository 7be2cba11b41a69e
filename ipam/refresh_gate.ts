/**
 * Source queries shared by concurrent callers (single flight), with a
 * short back-off after a failure. The engines of one process share a gate
 * (`IpamEngine`): in the agent, many ADDs run at once, and without it every
 * ADD that found a refresh due queried the wireserver or IMDS itself (50
 * concurrent ADDs made 50 requests; IMDS allows 5 a second).
 *
 * @module
 */

/** How long a failed query keeps callers with state off the source, in ms. */
export const REFRESH_BACKOFF_MS = 5_000;

/** What a query gave: its value, or the error it failed with. */
export type QueryOutcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: unknown };

/** Options of {@link RefreshGate}. */
export interface RefreshGateOptions {
  /** Clock in epoch ms. Default `Date.now`. */
  now?: () => number;
  /** The back-off after a failed query, in ms. Default 5000. */
  backoffMs?: number;
}

/** Options of {@link RefreshGate.query}. */
export interface GateQueryOptions {
  /**
   * {@link RefreshGate.ticket} as the caller took it before it read the
   * state that made it want a refresh.
   */
  readonly ticket: number;
  /**
   * The caller has state to fall back on: within the back-off of a failed
   * query it gets that failure instead of a new query.
   */
  readonly fallback: boolean;
}

interface Completed<T> {
  /** Its place in the order of completions (1, 2, ...). */
  readonly seq: number;
  /** When it completed, epoch ms. */
  readonly at: number;
  readonly outcome: QueryOutcome<T>;
}

/**
 * One query per key at a time, its outcome shared by every caller that
 * asks while it runs or that decided to ask before it completed; after a
 * failure, callers with state to fall back on skip the source for
 * `backoffMs`. A key names a source and how it is asked (URL, timeout,
 * retries).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RefreshGate } from "./refresh_gate.ts";
 * const gate = new RefreshGate<string>();
 * let queries = 0;
 * const ask = () =>
 *   gate.query("src", () => {
 *     queries++;
 *     return Promise.resolve("doc");
 *   }, { ticket: 0, fallback: false });
 * const [a, b] = await Promise.all([ask(), ask()]);
 * assert.deepEqual([a, b], [{ ok: true, value: "doc" }, { ok: true, value: "doc" }]);
 * assert.equal(queries, 1);
 * ```
 */
export class RefreshGate<T> {
  #now: () => number;
  #backoffMs: number;
  #running = new Map<string, Promise<QueryOutcome<T>>>();
  #completed = new Map<string, Completed<T>>();
  #seq = 0;

  /**
   * Creates a gate with no query run yet.
   *
   * @param options Clock and back-off.
   */
  constructor(options: RefreshGateOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#backoffMs = options.backoffMs ?? REFRESH_BACKOFF_MS;
  }

  /**
   * A ticket for {@link RefreshGate.query}: take it before reading the
   * state, so that a query that completes after it counts as fresh.
   *
   * @returns The number of queries completed so far.
   */
  ticket(): number {
    return this.#seq;
  }

  /**
   * True while the last query of `key` failed less than `backoffMs` ago (a
   * clock that went backwards ends the back-off).
   *
   * @param key The source.
   * @returns Whether a caller with state should leave the source alone.
   */
  backingOff(key: string): boolean {
    const last = this.#completed.get(key);
    if (last === undefined || last.outcome.ok) return false;
    const age = this.#now() - last.at;
    return age >= 0 && age < this.#backoffMs;
  }

  /**
   * The outcome of a query of `key`: the one running now; else the last
   * one, when it completed after `ticket` was taken; else, for a caller
   * with `fallback`, the last failure while its back-off lasts; else a new
   * query made by `run`.
   *
   * @param key The source.
   * @param run Makes the query.
   * @param options The caller's ticket and whether it has state.
   * @returns The outcome; never rejects.
   */
  query(
    key: string,
    run: () => Promise<T>,
    options: GateQueryOptions,
  ): Promise<QueryOutcome<T>> {
    const running = this.#running.get(key);
    if (running !== undefined) return running;
    const last = this.#completed.get(key);
    if (
      last !== undefined &&
      (last.seq > options.ticket ||
        (options.fallback && this.backingOff(key)))
    ) {
      return Promise.resolve(last.outcome);
    }
    const started = (async (): Promise<QueryOutcome<T>> => {
      let outcome: QueryOutcome<T>;
      try {
        outcome = { ok: true, value: await run() };
      } catch (error) {
        outcome = { ok: false, error };
      }
      this.#running.delete(key);
      this.#completed.set(key, {
        seq: ++this.#seq,
        at: this.#now(),
        outcome,
      });
      return outcome;
    })();
    this.#running.set(key, started);
    return started;
  }
}
