/**
 * The file-backed IPAM store on `cni/state_file.ts`: flock on
 * `<path>.lock`, atomic writes, corrupt files kept aside and reported.
 *
 * @module
 */
import { updateStateFile } from "@vnet/cni";
import { copyIpamState, parseIpamState } from "./state.ts";
import type { IpamState } from "./state.ts";
import type { IpamStore, StoreUpdate } from "./store.ts";

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** Bounded lock wait in ms (timeout: CNI code 11). */
  lockTimeoutMs?: number;
}

/**
 * The IPAM state in a JSON file, updated under a lock.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileStore } from "./file_store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new FileStore(`${dir}/azure-vnet-ipam.json`);
 * const had = await store.update((s) => ({ value: s === undefined }));
 * assert.equal(had, true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStore implements IpamStore {
  /** The state file path. */
  readonly path: string;
  #lockTimeoutMs: number | undefined;

  /**
   * Creates a store on `path` (nothing is touched until the first update).
   *
   * @param path The state file, e.g. `/var/run/azure-vnet-ipam.json`.
   * @param options Lock timeout.
   */
  constructor(path: string, options: FileStoreOptions = {}) {
    this.path = path;
    this.#lockTimeoutMs = options.lockTimeoutMs;
  }

  /**
   * Locks, reads, runs `fn`, saves `next` when given, unlocks. Updates of
   * one process that wait for the file together are written together
   * (`updateStateFile` of `@vnet/cni`: one lock, one read, one write, each
   * `fn` on a private copy, in arrival order). The state is shared and
   * frozen while the file holds what this process last read or wrote: `fn`
   * gets copies of the document, its pools and their address maps
   * ({@link copyIpamState}), and replaces address records rather than
   * editing them.
   *
   * @param fn The synchronous update.
   * @returns `fn`'s value.
   * @throws {CniError} 11 on lock timeout, 102 on a corrupt file, 5 on I/O.
   */
  update<T>(fn: (state: IpamState | undefined) => StoreUpdate<T>): Promise<T> {
    return updateStateFile(
      this.path,
      { parse: parseIpamState, copy: copyIpamState, fn },
      this.#lockTimeoutMs === undefined
        ? {}
        : { lockTimeoutMs: this.#lockTimeoutMs },
    );
  }
}
