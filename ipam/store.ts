/**
 * The IPAM store interface: one locked read-modify-write of the state.
 *
 * @module
 */
import type { IpamState } from "./state.ts";

/** What an update callback returns. */
export interface StoreUpdate<T> {
  /** Passed back to the caller of {@link IpamStore.update}. */
  value: T;
  /** The new state to save; the file is left untouched when absent. */
  next?: IpamState;
}

/**
 * Persistent IPAM state behind a lock. Implementations: `FileStore`
 * (production) and the private in-memory fake used by the tests.
 */
export interface IpamStore {
  /** Where the state lives (for messages). */
  readonly path: string;
  /**
   * Runs `fn` on the current state while holding the lock, and saves
   * `next` atomically when given. `fn` is synchronous: no network I/O ever
   * happens under the lock.
   *
   * @param fn Receives a private copy of the state, or `undefined` when
   * none exists yet.
   * @returns What `fn` returned as `value`.
   * @throws {CniError} 11 on lock timeout, 102 on a corrupt state file.
   */
  update<T>(fn: (state: IpamState | undefined) => StoreUpdate<T>): Promise<T>;
}
